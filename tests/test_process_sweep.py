"""The per-process sweep against fixture trees: each kind of process, exact values."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.paths import FIXTURES, REPO
from ksm_exporter.sources import process_sweep
from ksm_exporter.sources.kernel_file import BadValue
from ksm_exporter.sources.ksm_stat import KsmStat, parse_ksm_stat
from ksm_exporter.sources.process_sweep import ProcessKsm, ProcessSweeper
from tests.support.calls import Calls
from tests.support.privileges import without_file_capabilities

CURRENT = str(FIXTURES / "current" / "proc")
ALL_FIELDS = frozenset(
    {"rmap_items", "zero_pages", "merging_pages", "profit", "merge_any", "mergeable"}
)


def full(rmap: int, zero: int, merging: int, profit: int, merge_any: bool = False) -> KsmStat:
    return KsmStat(
        rmap_items=rmap,
        zero_pages=zero,
        merging_pages=merging,
        profit=profit,
        merge_any=merge_any,
        mergeable=True,
    )


CURRENT_REGISTERED = (
    ProcessKsm(1201, full(262144, 1024, 120000, 478937088)),
    ProcessKsm(1302, full(131072, 0, 50000, 196411392)),
    ProcessKsm(1403, full(2048, 0, 10, -90112)),
    ProcessKsm(2001, full(500, 0, 0, -32000)),
    ProcessKsm(2002, full(4096, 20, 300, 1048576, merge_any=True)),
    ProcessKsm(2200, full(1000, 5, 800, 3233280)),
    ProcessKsm(2300, full(16, 0, 0, -1024)),
    ProcessKsm(2400, full(64, 0, 32, 126976, merge_any=True)),
)


@pytest.mark.unit
def test_current_kernel_every_kind_of_process() -> None:
    sweep = ProcessSweeper(CURRENT).sweep()
    assert sweep.registered == CURRENT_REGISTERED
    assert sweep.scanned == 13
    assert (sweep.without_memory, sweep.vanished, sweep.unreadable) == (2, 0, 0)  # kthreads
    assert sweep.fields == ALL_FIELDS
    problems = {os.path.relpath(p.path, CURRENT): (p.value, p.reason) for p in sweep.problems}
    assert problems == {
        "2100/ksm_stat": (
            "ksm_rmap_items lots\nksm_merging_pages 3",
            "not an unsigned integer",
        ),
        "2101/ksm_stat": ("", "EISDIR: Is a directory"),
    }


@pytest.mark.unit
def test_threads_find_the_same_as_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Split across threads, the sweep finds what one thread finds. It splits from
    _PIDS_PER_THREAD pids a thread on; lowered here, 48 pids split four ways, as 1,024 would
    (a tree that large takes a second to write)."""
    monkeypatch.setattr(process_sweep, "_PIDS_PER_THREAD", 12)
    proc = tmp_path / "proc"
    for pid in range(1, 49):
        (proc / str(pid)).mkdir(parents=True)
        merging = pid if pid % 4 == 0 else 0
        (proc / str(pid) / "ksm_stat").write_text(
            f"ksm_rmap_items {merging * 2}\nksm_merging_pages {merging}\n"
        )
    one = ProcessSweeper(str(proc)).sweep()
    with ThreadPoolExecutor(3) as helpers:
        submitted = Calls(monkeypatch, helpers, "submit")
        sweeper = ProcessSweeper(str(proc), helpers, threads=4)
        several = sweeper.sweep()
        assert submitted.count == 3  # three of the four parts went to the helpers
        again = sweeper.sweep()  # idle content now comes from the memo
    assert one == several == again
    assert [p.pid for p in several.registered] == list(range(4, 49, 4))
    assert several.scanned == 48
    assert several.fields == {"rmap_items", "merging_pages"}


@pytest.mark.unit
def test_kernel_before_6_1_has_only_ksm_merging_pages() -> None:
    sweep = ProcessSweeper(str(FIXTURES / "old-kernel" / "proc")).sweep()
    assert sweep.registered == (ProcessKsm(100, KsmStat(merging_pages=700)),)
    assert (sweep.scanned, sweep.without_memory, sweep.vanished) == (3, 1, 0)
    assert sweep.fields == {"merging_pages"}
    assert sweep.problems == ()


@pytest.mark.unit
def test_kernel_6_1_keeps_merging_pages_in_its_own_file(tmp_path: Path) -> None:
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "ksm_stat").write_text("ksm_rmap_items 40\n")
    (tmp_path / "7" / "ksm_merging_pages").write_text("25\n")
    (tmp_path / "8").mkdir()
    (tmp_path / "8" / "ksm_stat").write_text("ksm_rmap_items 0\n")
    (tmp_path / "8" / "ksm_merging_pages").write_text("0\n")
    sweep = ProcessSweeper(str(tmp_path)).sweep()
    assert sweep.registered == (ProcessKsm(7, KsmStat(rmap_items=40, merging_pages=25)),)
    assert sweep.fields == {"rmap_items", "merging_pages"}


@pytest.mark.unit
def test_kernel_without_per_process_counters(tmp_path: Path) -> None:
    (tmp_path / "7").mkdir()
    (tmp_path / "self").mkdir()
    sweep = ProcessSweeper(str(tmp_path)).sweep()
    assert (sweep.registered, sweep.scanned, sweep.vanished) == ((), 1, 0)
    assert sweep.fields == frozenset()


@pytest.mark.unit
def test_missing_procfs_is_one_problem(tmp_path: Path) -> None:
    sweep = ProcessSweeper(str(tmp_path / "absent")).sweep()
    assert sweep.scanned == 0
    assert [p.reason for p in sweep.problems] == ["ENOENT: No such file or directory"]


@pytest.mark.unit
def test_a_pid_that_vanishes_after_listing_is_counted(tmp_path: Path) -> None:
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "ksm_stat").write_text("ksm_rmap_items 3\nksm_merging_pages 1\n")
    root_fd = os.open(tmp_path, os.O_RDONLY)
    try:
        # 9 was listed, then exited: its directory is gone when its file is opened.
        tally = ProcessSweeper(str(tmp_path))._sweep_pids(root_fd, [b"7", b"9"])
    finally:
        os.close(root_fd)
    assert (len(tally.registered), tally.vanished) == (1, 1)


@pytest.mark.e2e
def test_unreadable_processes_are_counted_and_logged_once(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    shutil.copytree(FIXTURES / "current" / "proc", proc)
    (proc / "1201" / "ksm_stat").chmod(0)
    (proc / "2002" / "ksm_stat").chmod(0)
    script = """
import logging, sys
from ksm_exporter.collector.collection import KsmCollection
from ksm_exporter.reading.host_reader import HostReader
from ksm_exporter.sources.roots import Roots
from ksm_exporter.logs import configure_logging
from harness.exposition import parse_samples, render, value
configure_logging("info", "logfmt")
collection = KsmCollection(HostReader(Roots(sys.argv[1], sys.argv[1])))
for _ in range(3):
    samples = parse_samples(render(collection))
print(value(samples, "ksm_exporter_processes_unreadable"),
      value(samples, "ksm_exporter_collect_errors_total", source="process"),
      value(samples, "ksm_processes_registered"))
"""
    run = subprocess.run(
        [*without_file_capabilities(), sys.executable, "-c", script, str(proc)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert run.stdout == "2.0 6.0 6.0\n", run.stderr
    lines = [line for line in run.stderr.splitlines() if "CAP_DAC_READ_SEARCH" in line]
    assert len(lines) == 1
    assert "unreadable_processes=2" in lines[0]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"ksm_rmap_items 5\n", KsmStat(rmap_items=5)),
        (
            b"ksm_merge_any: yes\nksm_process_profit -4096\nksm_mergeable: no\n",
            KsmStat(profit=-4096, merge_any=True, mergeable=False),
        ),
        (b"ksm_new_thing 1\nksm_merging_pages 9", KsmStat(merging_pages=9)),
    ],
)
def test_parse_by_key(raw: bytes, expected: KsmStat) -> None:
    assert parse_ksm_stat(raw) == expected


@pytest.mark.unit
@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"ksm_rmap_items\n", "not key value lines"),
        (b"ksm_rmap_items 1\nksm_rmap_items 2\n", "ksm_rmap_items appears twice"),
        (b"ksm_merge_any: maybe\n", "not yes or no"),
        (b"ksm_process_profit 1e9\n", "not an integer"),
        (b"something else\n", "no KSM counter"),
        (b"\xff\xfe", "not key value lines"),
    ],
)
def test_garbage_is_a_bad_value(raw: bytes, reason: str) -> None:
    with pytest.raises(BadValue, match=reason):
        parse_ksm_stat(raw)


@pytest.mark.unit
@given(st.binary(max_size=300))
def test_parser_never_fails_otherwise(raw: bytes) -> None:
    with contextlib.suppress(BadValue):
        parse_ksm_stat(raw)


@pytest.mark.unit
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "ksm_rmap_items": st.integers(0, 2**63 - 1),
            "ksm_merging_pages": st.integers(0, 2**63 - 1),
            "ksm_process_profit": st.integers(-(2**63), 2**63 - 1),
            "ksm_merge_any:": st.booleans(),
        },
    ).filter(bool),
    st.randoms(),
)
def test_any_order_of_lines_parses_the_same(lines: dict[str, object], order: object) -> None:
    rendered = [
        f"{key} {('yes' if value else 'no') if isinstance(value, bool) else value}"
        for key, value in lines.items()
    ]
    order.shuffle(rendered)  # type: ignore[attr-defined]
    stat = parse_ksm_stat(("\n".join(rendered) + "\n").encode())
    assert stat.rmap_items == lines.get("ksm_rmap_items")
    assert stat.merging_pages == lines.get("ksm_merging_pages")
    assert stat.profit == lines.get("ksm_process_profit")
    assert stat.get("merge_any") == lines.get("ksm_merge_any:")

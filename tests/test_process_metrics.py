"""Per-process metrics from the fixture tree: limit, other sums, labels, always-include."""

from __future__ import annotations

import re

import pytest

from harness.exposition import Samples, names, parse_samples, render, value
from harness.paths import fixture_roots
from ksm_exporter.cli import build_parser, load_settings, process_options
from ksm_exporter.collector.collection import KsmCollection
from ksm_exporter.derive.process_selection import (
    ProcessSelection,
    process_profit_bytes,
    select_processes,
)
from ksm_exporter.reading.host_reader import HostReader
from ksm_exporter.reading.processes import ProcessOptions
from ksm_exporter.sources.ksm_stat import KsmStat
from ksm_exporter.sources.process_sweep import ProcessKsm

pytestmark = pytest.mark.unit

PAGE_SIZE = 4096
PER_PROCESS = {
    "ksm_process_merging_pages": "ksm_process_other_merging_pages",
    "ksm_process_rmap_items": "ksm_process_other_rmap_items",
    "ksm_process_zero_pages": "ksm_process_other_zero_pages",
    "ksm_process_profit_bytes": "ksm_process_other_profit_bytes",
}
# Sums over every registered process of the current fixture.
TOTALS = {
    "ksm_process_merging_pages": 120000 + 50000 + 10 + 0 + 300 + 800 + 0 + 32,
    "ksm_process_rmap_items": 262144 + 131072 + 2048 + 500 + 4096 + 1000 + 16 + 64,
    "ksm_process_zero_pages": 1024 + 20 + 5,
    "ksm_process_profit_bytes": 478937088
    + 196411392
    - 90112
    - 32000
    + 1048576
    + 3233280
    - 1024
    + 126976,
}


def collect(**options: object) -> Samples:
    collection = KsmCollection(
        HostReader(
            fixture_roots("current"),
            PAGE_SIZE,
            ProcessOptions(**options),  # type: ignore[arg-type]
        )
    )
    return parse_samples(render(collection))


def pids_of(samples: Samples, name: str = "ksm_process_merging_pages") -> list[str]:
    return sorted(dict(labels)["pid"] for n, labels in samples if n == name)


def per_process_sum(samples: Samples, name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


def test_every_registered_process_within_the_default_limit() -> None:
    samples = collect()
    assert pids_of(samples) == ["1201", "1302", "1403", "2001", "2002", "2200", "2300", "2400"]
    assert value(samples, "ksm_processes_registered") == 8
    assert value(samples, "ksm_processes_merging") == 6
    assert value(samples, "ksm_process_other_processes") == 0
    for name, other in PER_PROCESS.items():
        assert per_process_sum(samples, name) == TOTALS[name]
        assert value(samples, other) == 0
    web01 = {
        "pid": "1201",
        "comm": "qemu-system-x86",
        "vm": "web01",
        "cgroup": "/machine.slice/machine-qemu\\x2d1\\x2dweb01.scope/libvirt/emulator",
    }
    assert value(samples, "ksm_process_profit_bytes", **web01) == 478937088
    assert value(samples, "ksm_process_merge_any", **web01) == 0
    assert value(samples, "ksm_process_mergeable", **web01) == 1
    java = {"pid": "2002", "comm": "java", "cgroup": "/system.slice/app.service"}
    assert value(samples, "ksm_process_merge_any", **java) == 1
    assert value(samples, "ksm_process_zero_pages", **java) == 20
    assert value(samples, "ksm_exporter_processes_scanned") == 13  # with kthreadd and ksmd
    assert value(samples, "ksm_exporter_processes_unreadable") == 0
    assert value(samples, "ksm_exporter_collect_errors_total", source="process") == 2


@pytest.mark.parametrize("limit", [0, 1, 2, 5, 8])
def test_per_process_plus_other_is_the_total(limit: int) -> None:
    samples = collect(limit=limit)
    assert len(pids_of(samples)) == min(limit, 8)
    assert value(samples, "ksm_process_other_processes") == 8 - min(limit, 8)
    for name, other in PER_PROCESS.items():
        assert per_process_sum(samples, name) + value(samples, other) == TOTALS[name]
    assert value(samples, "ksm_processes_registered") == 8


def test_limit_keeps_the_most_merging_pages() -> None:
    samples = collect(limit=2)
    assert pids_of(samples) == ["1201", "1302"]
    assert value(samples, "ksm_process_other_merging_pages") == 10 + 300 + 800 + 32
    assert value(samples, "ksm_process_other_rmap_items") == 2048 + 500 + 4096 + 1000 + 16 + 64
    assert value(samples, "ksm_process_other_zero_pages") == 25
    assert value(samples, "ksm_process_other_profit_bytes") == (
        -90112 - 32000 + 1048576 + 3233280 - 1024 + 126976
    )


def test_always_include_matches_comm_guest_name_or_cgroup() -> None:
    # "lab" is only in 1403's guest name and cgroup, "redis" in 2001's comm and cgroup,
    # "app.service" only in 2002's cgroup path.
    samples = collect(limit=2, always_include=re.compile(r"^lab|redis|app\.service"))
    assert pids_of(samples) == ["1201", "1302", "1403", "2001", "2002"]
    assert value(samples, "ksm_process_other_processes") == 3
    for name, other in PER_PROCESS.items():
        assert per_process_sum(samples, name) + value(samples, other) == TOTALS[name]


def test_always_include_beyond_a_zero_limit() -> None:
    samples = collect(limit=0, always_include=re.compile(r"^web01$"))
    assert pids_of(samples) == ["1201"]


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ((), {"pid": "1302"}),
        (("vm",), {"pid": "1302", "vm": "db02"}),
        (("comm", "cgroup"), {"pid": "1302", "comm": "kvm", "cgroup": "/qemu.slice/102.scope"}),
    ],
)
def test_labels_choose_what_is_exported(labels: tuple[str, ...], expected: dict[str, str]) -> None:
    samples = collect(labels=labels)
    assert value(samples, "ksm_process_merging_pages", **expected) == 50000


def test_the_sweep_can_be_turned_off() -> None:
    collection = KsmCollection(
        HostReader(fixture_roots("current"), PAGE_SIZE, ProcessOptions(enabled=False))
    )
    samples = parse_samples(render(collection))
    assert not {n for n in names(samples) if n.startswith(("ksm_process", "ksm_exporter_proc"))}
    assert ("ksm_exporter_collect_errors_total", (("source", "process"),)) not in samples


def process(pid: int, merging: int, rmap: int = 1) -> ProcessKsm:
    return ProcessKsm(pid, KsmStat(rmap_items=rmap, merging_pages=merging))


def test_selection_ranks_by_merging_then_rmap_items_then_pid() -> None:
    procs = [process(9, 5), process(3, 5), process(4, 5, rmap=9), process(1, 0), process(2, 7)]
    selection = select_processes(procs, 3)
    assert [p.pid for p in selection.own] == [2, 4, 3]
    assert [p.pid for p in selection.other] == [9, 1]
    assert select_processes(procs, 1, always={1}) == ProcessSelection(
        own=(process(2, 7), process(1, 0)),
        other=(process(4, 5, rmap=9), process(3, 5), process(9, 5)),
    )


@pytest.mark.parametrize(
    ("stat", "profit"),
    [
        (KsmStat(rmap_items=10, merging_pages=3, profit=-7), -7),
        (KsmStat(rmap_items=10, merging_pages=3, zero_pages=2), 5 * 4096 - 640),
        (KsmStat(rmap_items=10, merging_pages=3), 3 * 4096 - 640),
        (KsmStat(merging_pages=3), None),
    ],
)
def test_profit_is_the_kernels_or_the_documented_formula(stat: KsmStat, profit: int | None) -> None:
    assert process_profit_bytes(stat, 4096) == profit


def test_flags_become_process_options() -> None:
    args = build_parser().parse_args(
        [
            "--no-collector.process",
            "--collector.process.limit=7",
            "--collector.process.labels=cgroup, comm",
            "--collector.process.always-include=^secret-",
        ]
    )
    options = process_options(load_settings(args))
    assert options == ProcessOptions(
        enabled=False, limit=7, labels=("comm", "cgroup"), always_include=re.compile("^secret-")
    )
    defaults = process_options(load_settings(build_parser().parse_args([])))
    assert defaults == ProcessOptions()
    empty = build_parser().parse_args(["--collector.process.labels="])
    assert process_options(load_settings(empty)).labels == ()

"""The ksmd kernel thread: its stat line, the search for it, and its CPU time."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.paths import fixture_roots
from ksm_exporter.sources import ksmd as ksmd_module
from ksm_exporter.sources.kernel_file import BadValue
from ksm_exporter.sources.ksmd import (
    SEARCH_BACKOFF_SECONDS,
    Ksmd,
    KsmdLocator,
    parse_stat,
)
from ksm_exporter.sources.roots import Roots
from tests.support.calls import Calls
from tests.support.sampling import ManualClock, write_stat

pytestmark = pytest.mark.unit

TICK_NS = 10_000_000  # one clock tick of 10 ms
RUN_DELAY_NS = 81234  # schedstat's second field as write_stat writes it


def test_stat_parses_after_the_last_parenthesis() -> None:
    raw = b"4242 (a) b (c)) R 1 2 3 4 5 64 0 0 0 0 7 11 0 0 20 0 1 0 9 0 0\n"
    thread = parse_stat(raw)
    assert (thread.comm, thread.flags, thread.cpu_ticks) == ("a) b (c)", 64, 18)
    assert not thread.is_ksmd


def test_real_ksmd_line_is_ksmd() -> None:
    thread = parse_stat(Path(fixture_roots("current").procfs, "37", "stat").read_bytes())
    assert (thread.comm, thread.cpu_ticks, thread.is_ksmd) == ("ksmd", 1235, True)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"37 ksmd S 2",
        b"37 (ksmd) S 2 0 0 0 -1 64 0 0 0 0 1",
        b"37 (ksmd) S 2 0 0 0 -1 x 0 0 0 0 1 2 0",
        b"37 (ksmd) S 2 0 0 0 -1 64 0 0 0 0 -1 2 0",
    ],
)
def test_bad_stat_is_a_bad_value(raw: bytes) -> None:
    with pytest.raises(BadValue):
        parse_stat(raw)


@given(st.binary(max_size=200))
def test_stat_parser_raises_nothing_but_bad_value(raw: bytes) -> None:
    with contextlib.suppress(BadValue):
        parse_stat(raw)


def test_user_process_called_ksmd_is_not_ksmd(tmp_path: Path) -> None:
    roots = Roots(str(tmp_path), str(tmp_path))
    write_stat(roots, 5, utime=1, stime=1, flags=0x400000)  # a process, not a kernel thread
    write_stat(roots, 40, utime=3, stime=4)
    (tmp_path / "self").mkdir()
    assert KsmdLocator(str(tmp_path)).read().ksmd == Ksmd(40, 7 * TICK_NS, RUN_DELAY_NS)


def test_ksmd_is_found_again_when_its_pid_goes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    searches = Calls(monkeypatch, ksmd_module, "find_ksmd")
    roots = Roots(str(tmp_path), str(tmp_path))
    write_stat(roots, 40, utime=3, stime=4)
    locator = KsmdLocator(str(tmp_path))
    assert locator.read().ksmd == Ksmd(40, 7 * TICK_NS, RUN_DELAY_NS)
    write_stat(roots, 40, utime=3, stime=5)
    assert (locator.read().ksmd, searches.count) == (Ksmd(40, 8 * TICK_NS, RUN_DELAY_NS), 1)
    shutil.rmtree(tmp_path / "40")
    write_stat(roots, 90, utime=0, stime=1)
    assert (locator.read().ksmd, searches.count) == (Ksmd(90, 1 * TICK_NS, RUN_DELAY_NS), 2)
    write_stat(roots, 90, utime=0, stime=1, comm="kworker/0:1")  # pid reused by another thread
    write_stat(roots, 95, utime=0, stime=2)
    assert (locator.read().ksmd, searches.count) == (Ksmd(95, 2 * TICK_NS, RUN_DELAY_NS), 3)


def test_search_for_a_missing_ksmd_backs_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    searches = Calls(monkeypatch, ksmd_module, "find_ksmd")
    clock = ManualClock()
    locator = KsmdLocator(str(tmp_path), clock)
    assert locator.read().ksmd is None
    clock.now += SEARCH_BACKOFF_SECONDS - 1
    assert (locator.read().ksmd, searches.count) == (None, 1)
    write_stat(Roots(str(tmp_path), str(tmp_path)), 40, utime=1, stime=1)
    clock.now += 1
    assert (locator.read().ksmd, searches.count) == (Ksmd(40, 2 * TICK_NS, RUN_DELAY_NS), 2)


def test_garbled_ksmd_stat_is_a_problem(tmp_path: Path) -> None:
    roots = Roots(str(tmp_path), str(tmp_path))
    write_stat(roots, 40, utime=3, stime=4)
    locator = KsmdLocator(str(tmp_path))
    locator.read()
    (tmp_path / "40" / "stat").write_text("40 (ksmd) S 2 garbage\n")
    reading = locator.read()
    assert reading.ksmd is None
    assert [(p.path, p.reason) for p in reading.problems] == [
        (str(tmp_path / "40" / "stat"), "fewer fields than utime and stime")
    ]

"""Scan cost: ksmd's CPU time, the sampler and the figures derived from successive samples."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ksm_exporter.collector.collection import KsmCollection, Roots
from ksm_exporter.derive.scan_cost import CostSample, ScanCost, advance
from ksm_exporter.sources.kernel_file import BadValue
from ksm_exporter.sources.ksmd import (
    SEARCH_BACKOFF_SECONDS,
    Ksmd,
    KsmdLocator,
    parse_stat,
)
from tests.support.exposition import names, parse_samples, render, value
from tests.support.paths import fixture_roots
from tests.support.sampling import (
    CLOCK_TICKS,
    KSMD_PID,
    ManualClock,
    copy_fixture,
    sampled_collection,
    write_full_scans,
    write_stat,
)

COST_METRICS = {
    "ksm_ksmd_cpu_ratio",
    "ksm_full_scan_duration_seconds",
    "ksm_ksmd_cpu_seconds_per_full_scan",
}


def fed(*samples: CostSample) -> ScanCost:
    cost = ScanCost()
    for sample in samples:
        cost = advance(cost, sample, CLOCK_TICKS)
    return cost


# --- ksmd's stat ---------------------------------------------------------------------------


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
    assert KsmdLocator(str(tmp_path)).read().ksmd == Ksmd(40, 7)


def test_ksmd_is_found_again_when_its_pid_goes(tmp_path: Path) -> None:
    roots = Roots(str(tmp_path), str(tmp_path))
    write_stat(roots, 40, utime=3, stime=4)
    locator = KsmdLocator(str(tmp_path))
    assert locator.read().ksmd == Ksmd(40, 7)
    write_stat(roots, 40, utime=3, stime=5)
    assert (locator.read().ksmd, locator.searches) == (Ksmd(40, 8), 1)
    shutil.rmtree(tmp_path / "40")
    write_stat(roots, 90, utime=0, stime=1)
    assert (locator.read().ksmd, locator.searches) == (Ksmd(90, 1), 2)
    write_stat(roots, 90, utime=0, stime=1, comm="kworker/0:1")  # pid reused by another thread
    write_stat(roots, 95, utime=0, stime=2)
    assert (locator.read().ksmd, locator.searches) == (Ksmd(95, 2), 3)


def test_search_for_a_missing_ksmd_backs_off(tmp_path: Path) -> None:
    clock = ManualClock()
    locator = KsmdLocator(str(tmp_path), clock)
    assert locator.read().ksmd is None
    clock.now += SEARCH_BACKOFF_SECONDS - 1
    assert (locator.read().ksmd, locator.searches) == (None, 1)
    write_stat(Roots(str(tmp_path), str(tmp_path)), 40, utime=1, stime=1)
    clock.now += 1
    assert (locator.read().ksmd, locator.searches) == (Ksmd(40, 2), 2)


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


# --- derived figures -----------------------------------------------------------------------


def test_ratio_duration_and_cpu_per_scan_are_exact() -> None:
    cost = fed(
        CostSample(0.0, 42, 37, 1235),
        CostSample(1.0, 43, 37, 1260),  # a scan ends: the next one starts here
        CostSample(21.0, 44, 37, 1760),  # ... and ends 20 s later, 500 ticks spent
        CostSample(22.0, 44, 37, 1790),
    )
    assert cost.cpu_ratio == 0.3
    assert cost.full_scan_seconds == 20.0
    assert cost.cpu_seconds_per_full_scan == 5.0


def test_no_duration_until_two_completions_were_seen() -> None:
    cost = fed(CostSample(0.0, 42, 37, 0), CostSample(1.0, 45, 37, 50))
    assert (cost.cpu_ratio, cost.full_scan_seconds, cost.cpu_seconds_per_full_scan) == (
        0.5,
        None,
        None,
    )
    assert fed(CostSample(0.0, 42, 37, 0)) == ScanCost(last=CostSample(0.0, 42, 37, 0))


def test_several_scans_in_one_interval_share_it() -> None:
    cost = fed(CostSample(0.0, 10, 37, 0), CostSample(1.0, 11, 37, 10), CostSample(4.0, 17, 37, 70))
    assert cost.full_scan_seconds == 0.5
    assert cost.cpu_seconds_per_full_scan == 0.1


def test_reset_to_zero_forgets_the_scan_under_way_and_keeps_the_last_figures() -> None:
    cost = fed(
        CostSample(0.0, 50, 37, 0),
        CostSample(1.0, 51, 37, 100),
        CostSample(5.0, 52, 37, 300),  # 4 s, 2 s of CPU
        CostSample(6.0, 0, 37, 300),  # run=2
        CostSample(7.0, 1, 37, 310),  # not a whole scan: it began before the reset
    )
    assert (cost.full_scan_seconds, cost.cpu_seconds_per_full_scan) == (4.0, 2.0)
    cost = advance(cost, CostSample(10.0, 2, 37, 340), CLOCK_TICKS)
    assert (cost.full_scan_seconds, cost.cpu_seconds_per_full_scan) == (3.0, 0.3)


def test_without_ksmd_only_the_durations_remain() -> None:
    cost = fed(CostSample(0.0, 1), CostSample(1.0, 2), CostSample(3.0, 3))
    assert (cost.cpu_ratio, cost.full_scan_seconds, cost.cpu_seconds_per_full_scan) == (
        None,
        2.0,
        None,
    )


def test_another_ksmd_breaks_the_cpu_figures() -> None:
    cost = fed(CostSample(0.0, 1, 37, 500), CostSample(1.0, 2, 37, 600), CostSample(2.0, 3, 38, 5))
    assert (cost.cpu_ratio, cost.full_scan_seconds, cost.cpu_seconds_per_full_scan) == (
        None,
        1.0,
        None,
    )


def test_full_scans_vanishing_forgets_the_completion() -> None:
    cost = fed(CostSample(0.0, 1), CostSample(1.0, 2), CostSample(2.0, None), CostSample(3.0, 3))
    assert (cost.completion, cost.full_scan_seconds) == (None, None)


# --- the sampler over fixture trees --------------------------------------------------------


def test_sampled_collection_exports_exact_figures(tmp_path: Path) -> None:
    samples = parse_samples(render(sampled_collection(tmp_path)))
    assert value(samples, "ksm_ksmd_cpu_seconds_total") == 17.9
    assert value(samples, "ksm_ksmd_cpu_ratio") == 0.3
    assert value(samples, "ksm_full_scan_duration_seconds") == 20.0
    assert value(samples, "ksm_ksmd_cpu_seconds_per_full_scan") == 5.0
    assert value(samples, "ksm_exporter_collect_errors_total", source="ksmd") == 0


def test_sampler_follows_a_reset_in_the_tree(tmp_path: Path) -> None:
    roots = copy_fixture("current", tmp_path)
    clock = ManualClock()
    collection = KsmCollection(roots, clock=clock, clock_ticks=CLOCK_TICKS)
    for offset, full_scans, ticks in [(0, 7, 100), (1, 8, 120), (3, 9, 160), (4, 0, 160),
                                      (5, 1, 170), (9, 2, 250)]:  # fmt: skip
        clock.now = 1000.0 + offset
        write_full_scans(roots, full_scans)
        write_stat(roots, KSMD_PID, utime=0, stime=ticks)
        cost = collection.sampler.tick()
        if offset == 4:
            assert (cost.full_scan_seconds, cost.cpu_seconds_per_full_scan) == (2.0, 0.4)
    samples = parse_samples(render(collection))
    assert value(samples, "ksm_full_scan_duration_seconds") == 4.0
    assert value(samples, "ksm_ksmd_cpu_seconds_per_full_scan") == 0.8
    assert value(samples, "ksm_ksmd_cpu_ratio") == 0.2
    assert value(samples, "ksm_ksmd_cpu_seconds_total") == 2.5


def test_before_sampling_only_the_cpu_counter_is_there() -> None:
    collection = KsmCollection(fixture_roots("current"), clock_ticks=CLOCK_TICKS)
    samples = parse_samples(render(collection))
    assert value(samples, "ksm_ksmd_cpu_seconds_total") == 12.35
    assert names(samples) & COST_METRICS == set()


def test_ksmd_missing_omits_its_metrics(tmp_path: Path) -> None:
    roots = copy_fixture("current", tmp_path)
    shutil.rmtree(Path(roots.procfs) / str(KSMD_PID))
    clock = ManualClock()
    collection = KsmCollection(roots, clock=clock, clock_ticks=CLOCK_TICKS)
    for offset, full_scans in [(0, 1), (1, 2), (3, 3)]:
        clock.now = 1000.0 + offset
        write_full_scans(roots, full_scans)
        collection.sampler.tick()
    samples = parse_samples(render(collection))
    present = names(samples)
    assert "ksm_ksmd_cpu_seconds_total" not in present
    assert present & COST_METRICS == {"ksm_full_scan_duration_seconds"}
    assert value(samples, "ksm_full_scan_duration_seconds") == 2.0
    assert value(samples, "ksm_exporter_collect_errors_total", source="ksmd") == 0


def test_without_ksm_the_sampler_does_not_look_for_ksmd(tmp_path: Path) -> None:
    write_stat(Roots(str(tmp_path), str(tmp_path)), KSMD_PID, utime=1, stime=1)
    collection = KsmCollection(Roots(str(tmp_path), str(tmp_path)))
    collection.sampler.tick()
    collection.sampler.tick()
    samples = parse_samples(render(collection))
    assert collection.ksmd.searches == 0
    assert names(samples) & (COST_METRICS | {"ksm_ksmd_cpu_seconds_total"}) == set()

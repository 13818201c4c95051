"""Scan cost: the sampler and the figures derived from successive samples of ksmd and KSM."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.exposition import names, parse_samples, render, value
from harness.paths import fixture_roots
from ksm_exporter.collector.collection import KsmCollection
from ksm_exporter.derive.scan_cost import ScanCost, advance
from ksm_exporter.reading.host_reader import HostReader
from ksm_exporter.sources import ksmd as ksmd_module
from ksm_exporter.sources.host import ScanReading
from ksm_exporter.sources.ksmd import (
    KsmdLocator,
)
from ksm_exporter.sources.roots import Roots
from tests.support.calls import Calls
from tests.support.sampling import (
    CLOCK_TICKS,
    KSMD_PID,
    ManualClock,
    copy_fixture,
    sampled_collection,
    write_full_scans,
    write_ksm,
    write_schedstat,
    write_stat,
)

pytestmark = pytest.mark.unit

TICK_NS = 10_000_000  # one clock tick of 10 ms

COST_METRICS = {
    "ksm_ksmd_cpu_ratio",
    "ksm_full_scan_duration_seconds",
    "ksm_full_scan_ksmd_cpu_seconds",
}


def at(
    seconds: float, full_scans: int | None, ticks: int | None = None, pid: int = 37, run: int = 1
) -> ScanReading:
    """A sample with ksmd's CPU in 10 ms ticks (None: no ksmd) and KSM running."""
    cpu_ns = None if ticks is None else ticks * 10_000_000
    return ScanReading(seconds, full_scans, run, None if ticks is None else pid, cpu_ns)


def fed(*samples: ScanReading) -> ScanCost:
    cost = ScanCost()
    for sample in samples:
        cost = advance(cost, sample)
    return cost


# --- derived figures -----------------------------------------------------------------------


def test_ratio_duration_and_cpu_per_scan_are_exact() -> None:
    cost = fed(
        at(0.0, 42, 1235),
        at(1.0, 43, 1260),  # a scan ends: the next one starts here
        at(21.0, 44, 1760),  # ... and ends 20 s later, 500 ticks spent
        at(22.0, 44, 1790),
    )
    assert cost.cpu_ratio == 0.3
    assert cost.full_scan_seconds == 20.0
    assert cost.cpu_seconds_per_full_scan == 5.0


def test_no_duration_until_two_completions_were_seen() -> None:
    cost = fed(at(0.0, 42, 0), at(1.0, 45, 50))
    assert (cost.cpu_ratio, cost.full_scan_seconds, cost.cpu_seconds_per_full_scan) == (
        0.5,
        None,
        None,
    )
    assert fed(at(0.0, 42, 0)) == ScanCost(last=at(0.0, 42, 0))


def test_several_scans_in_one_interval_share_it() -> None:
    cost = fed(at(0.0, 10, 0), at(1.0, 11, 10), at(4.0, 17, 70))
    assert cost.full_scan_seconds == 0.5
    assert cost.cpu_seconds_per_full_scan == 0.1


def test_reset_to_zero_forgets_the_scan_under_way_and_keeps_the_last_figures() -> None:
    cost = fed(
        at(0.0, 50, 0),
        at(1.0, 51, 100),
        at(5.0, 52, 300),  # 4 s, 2 s of CPU
        at(6.0, 0, 300),  # run=2
        at(7.0, 1, 310),  # not a whole scan: it began before the reset
    )
    assert (cost.full_scan_seconds, cost.cpu_seconds_per_full_scan) == (4.0, 2.0)
    cost = advance(cost, at(10.0, 2, 340))
    assert (cost.full_scan_seconds, cost.cpu_seconds_per_full_scan) == (3.0, 0.3)


def test_without_ksmd_only_the_durations_remain() -> None:
    cost = fed(at(0.0, 1), at(1.0, 2), at(3.0, 3))
    assert (cost.cpu_ratio, cost.full_scan_seconds, cost.cpu_seconds_per_full_scan) == (
        None,
        2.0,
        None,
    )


def test_another_ksmd_breaks_the_cpu_figures() -> None:
    cost = fed(at(0.0, 1, 500), at(1.0, 2, 600), at(2.0, 3, 5, pid=38))
    assert (cost.cpu_ratio, cost.full_scan_seconds, cost.cpu_seconds_per_full_scan) == (
        None,
        1.0,
        None,
    )


def test_full_scans_vanishing_forgets_the_completion() -> None:
    cost = fed(at(0.0, 1), at(1.0, 2), at(2.0, None), at(3.0, 3))
    assert (cost.completion, cost.full_scan_seconds) == (None, None)


# --- the sampler over fixture trees --------------------------------------------------------


def test_sampled_collection_exports_exact_figures(tmp_path: Path) -> None:
    samples = parse_samples(render(sampled_collection(tmp_path)))
    assert value(samples, "ksm_ksmd_cpu_seconds_total") == 17.9
    assert value(samples, "ksm_ksmd_cpu_ratio") == 0.3
    assert value(samples, "ksm_full_scan_duration_seconds") == 20.0
    assert value(samples, "ksm_full_scan_ksmd_cpu_seconds") == 5.0
    assert value(samples, "ksm_exporter_collect_errors_total", source="ksmd") == 0


def test_sampler_follows_a_reset_in_the_tree(tmp_path: Path) -> None:
    roots = copy_fixture("current", tmp_path)
    clock = ManualClock()
    collection = KsmCollection(HostReader(roots, clock=clock, clock_ticks=CLOCK_TICKS))
    for offset, full_scans, ticks in [(0, 7, 100), (1, 8, 120), (3, 9, 160), (4, 0, 160),
                                      (5, 1, 170), (9, 2, 250)]:  # fmt: skip
        clock.now = 1000.0 + offset
        write_full_scans(roots, full_scans)
        write_stat(roots, KSMD_PID, utime=0, stime=ticks)
        cost = collection.reader.sampler.tick()
        if offset == 4:
            assert (cost.full_scan_seconds, cost.cpu_seconds_per_full_scan) == (2.0, 0.4)
    samples = parse_samples(render(collection))
    assert value(samples, "ksm_full_scan_duration_seconds") == 4.0
    assert value(samples, "ksm_full_scan_ksmd_cpu_seconds") == 0.8
    assert value(samples, "ksm_ksmd_cpu_ratio") == 0.2
    assert value(samples, "ksm_ksmd_cpu_seconds_total") == 2.5


def test_before_sampling_only_the_cpu_counter_is_there() -> None:
    collection = KsmCollection(HostReader(fixture_roots("current"), clock_ticks=CLOCK_TICKS))
    samples = parse_samples(render(collection))
    assert value(samples, "ksm_ksmd_cpu_seconds_total") == 12.351234567  # schedstat
    assert names(samples) & COST_METRICS == set()


def test_ksmd_missing_omits_its_metrics(tmp_path: Path) -> None:
    roots = copy_fixture("current", tmp_path)
    shutil.rmtree(Path(roots.procfs) / str(KSMD_PID))
    clock = ManualClock()
    collection = KsmCollection(HostReader(roots, clock=clock, clock_ticks=CLOCK_TICKS))
    for offset, full_scans in [(0, 1), (1, 2), (3, 3)]:
        clock.now = 1000.0 + offset
        write_full_scans(roots, full_scans)
        collection.reader.sampler.tick()
    samples = parse_samples(render(collection))
    present = names(samples)
    assert "ksm_ksmd_cpu_seconds_total" not in present
    assert present & COST_METRICS == {"ksm_full_scan_duration_seconds"}
    assert value(samples, "ksm_full_scan_duration_seconds") == 2.0
    assert value(samples, "ksm_exporter_collect_errors_total", source="ksmd") == 0


def test_without_ksm_the_sampler_does_not_look_for_ksmd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    searches = Calls(monkeypatch, ksmd_module, "find_ksmd")
    write_stat(Roots(str(tmp_path), str(tmp_path)), KSMD_PID, utime=1, stime=1)
    collection = KsmCollection(HostReader(Roots(str(tmp_path), str(tmp_path))))
    collection.reader.sampler.tick()
    collection.reader.sampler.tick()
    samples = parse_samples(render(collection))
    assert searches.count == 0
    assert names(samples) & (COST_METRICS | {"ksm_ksmd_cpu_seconds_total"}) == set()


# --- time and CPU while KSM is not running -------------------------------------------------


def test_a_stop_of_hours_between_scans_does_not_count() -> None:
    """Scans every 10 s, run=0 for 2 h, then one more 10 s scan: that scan took 10 s."""
    cost = fed(
        at(0.0, 5, 0),
        at(10.0, 6, 100),
        at(20.0, 7, 200),  # a 10 s scan
        at(21.0, 7, 210, run=0),  # stopped for two hours
        at(7221.0, 7, 210, run=0),
        at(7222.0, 7, 210),  # running again
        at(7231.0, 8, 300),
    )
    assert cost.full_scan_seconds == 10.0
    assert cost.cpu_seconds_per_full_scan == 1.0


def test_a_scan_interrupted_by_a_stop_counts_only_its_running_time() -> None:
    cost = fed(
        at(0.0, 5, 0),
        at(4.0, 6, 40),
        at(7.0, 6, 70),
        at(8.0, 6, 80, run=0),  # stopped mid-scan for an hour
        at(3608.0, 6, 80, run=0),
        at(3609.0, 6, 80),
        at(3612.0, 7, 110),
    )
    assert cost.full_scan_seconds == 7.0  # 3 s before the stop, 3 s after, half of each edge
    assert cost.cpu_seconds_per_full_scan == 0.7


def test_memory_offline_pauses_the_clock_too() -> None:
    """run reads 5 while memory is taken offline: ksmd waits, so the time does not count."""
    cost = fed(at(0.0, 1, 0), at(2.0, 2, 20), at(3.0, 2, 30, run=5), at(60.0, 2, 30, run=5),
               at(61.0, 2, 30), at(62.0, 3, 40))  # fmt: skip
    assert cost.full_scan_seconds == 2.0


def test_the_sampler_reads_run_from_the_tree(tmp_path: Path) -> None:
    roots = copy_fixture("current", tmp_path)
    clock = ManualClock()
    collection = KsmCollection(HostReader(roots, clock=clock, clock_ticks=CLOCK_TICKS))
    for offset, run, full_scans, ticks in [(0, 1, 7, 100), (10, 1, 8, 200), (11, 0, 8, 205),
                                           (7211, 0, 8, 205), (7212, 1, 8, 205),
                                           (7221, 1, 9, 300)]:  # fmt: skip
        clock.now = 1000.0 + offset
        write_ksm(roots, "run", run)
        write_full_scans(roots, full_scans)
        write_stat(roots, KSMD_PID, utime=0, stime=ticks)
        collection.reader.sampler.tick()
    samples = parse_samples(render(collection))
    assert value(samples, "ksm_full_scan_duration_seconds") == 10.0
    assert value(samples, "ksm_full_scan_ksmd_cpu_seconds") == 1.0


# --- ksmd's CPU time: schedstat first ------------------------------------------------------


def test_schedstat_is_preferred_to_clock_ticks() -> None:
    """The `current` fixture has both: schedstat's nanoseconds win over stat's 1235 ticks."""
    samples = parse_samples(
        render(KsmCollection(HostReader(fixture_roots("current"), clock_ticks=100)))
    )
    assert value(samples, "ksm_ksmd_cpu_seconds_total") == 12.351234567


def test_clock_ticks_where_schedstat_is_missing(tmp_path: Path) -> None:
    roots = copy_fixture("current", tmp_path)
    (Path(roots.procfs) / str(KSMD_PID) / "schedstat").unlink()
    samples = parse_samples(render(KsmCollection(HostReader(roots, clock_ticks=250))))
    assert value(samples, "ksm_ksmd_cpu_seconds_total") == 1235 / 250


def test_sub_tick_cpu_per_scan_is_measured(tmp_path: Path) -> None:
    """0.2 s scans costing 4 ms each: ticks of 10 ms would read 0 or 10 ms."""
    roots = copy_fixture("current", tmp_path)
    clock = ManualClock()
    collection = KsmCollection(HostReader(roots, clock=clock, clock_ticks=CLOCK_TICKS))
    for step in range(6):
        clock.now = 1000.0 + 0.2 * step
        write_full_scans(roots, 100 + step)
        write_schedstat(roots, KSMD_PID, 5_000_000_000 + 4_000_000 * step)
        collection.reader.sampler.tick()
    samples = parse_samples(render(collection))
    assert value(samples, "ksm_full_scan_ksmd_cpu_seconds") == 0.004
    assert value(samples, "ksm_ksmd_cpu_ratio") == pytest.approx(0.02)


def test_bad_schedstat_is_a_problem(tmp_path: Path) -> None:
    roots = Roots(str(tmp_path), str(tmp_path))
    write_stat(roots, 40, utime=3, stime=4)
    (tmp_path / "40" / "schedstat").write_text("lots of time\n")
    reading = KsmdLocator(str(tmp_path)).read()
    assert reading.ksmd is None
    assert [(p.path, p.reason) for p in reading.problems] == [
        (str(tmp_path / "40" / "schedstat"), "the first field is not an unsigned integer")
    ]

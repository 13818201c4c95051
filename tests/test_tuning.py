"""Tuning advice: the model of ksmd fitted by the real sampler to a simulated ksmd.

The simulator (tests/support/ksmd_simulator.py) writes the files the sampler reads as a
ksmd with known costs would change them; the exporter must recover those costs, and its
recommendation, applied to the simulated ksmd, must give what it predicted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from harness.exposition import parse_samples, render, value
from ksm_exporter.collector.collection import KsmCollection
from ksm_exporter.derive.other_tuners import AdvisorLimits, advisor_step, kernel_advisor
from ksm_exporter.derive.scan_cost import FullScan, raw_state
from ksm_exporter.derive.scan_trend import Trend, next_trend
from ksm_exporter.derive.tuning import Advice, Model, TuningOptions, advise, fit_cost, host_now
from ksm_exporter.reading.host_reader import HostReader
from tests.support.ksmd_simulator import KsmdSimulator, run_for, saturating
from tests.support.sampling import CLOCK_TICKS, ManualClock, copy_fixture

pytestmark = pytest.mark.unit

PAGE_CPU = 0.5e-6  # c: seconds of CPU per page
BATCH_CPU = 30e-6  # b: seconds of CPU per batch, as measured on a real host
PAGES = 200_000  # N: 800 MiB registered


@dataclass
class Rig:
    """The `current` fixture, a collection reading it and a simulated ksmd writing it."""

    collection: KsmCollection
    sim: KsmdSimulator
    step: float

    def run(self, seconds: float) -> None:
        run_for(self.sim, self.collection.reader.sampler.tick, seconds, self.step)

    def run_scans(self, scans: int) -> None:
        """Until `scans` more full scans completed and the sampler saw the last one."""
        target = self.sim.full_scans + scans
        while self.sim.full_scans < target:
            self.run(self.step)
        self.run(self.step)

    def advice(self) -> Advice:
        collection = self.collection
        sample = replace(
            collection.reader.read(),
            processes=collection.reader.record_sweep(collection.reader.sweep_processes()),
        )
        host = host_now(sample.sysfs.snapshot, sample.processes, collection.reader.kernel_hz)
        return advise(collection.reader.sampler.cost, host, collection.tuning)

    def apply(self, advice: Advice) -> None:
        assert advice.pages_to_scan is not None
        self.sim.set(pages_to_scan=advice.pages_to_scan)


def rig(
    tmp_path: Path,
    *,
    hz: int = 250,
    sleep_millisecs: int = 20,
    budget: float = 0.01,
    steady: float = 200.0,
    saved: Callable[[int], int] | None = None,
    pages: int = PAGES,
    step: float = 1.0,
    counts_pages: bool = True,
    run_delay: float = 0.0,
    blocked: float = 0.0,
    unmerged: int = 0,
    skip_cpu: float = 0.0,
) -> Rig:
    roots = copy_fixture("current", tmp_path)
    clock = ManualClock()
    sim = KsmdSimulator(
        roots,
        clock,
        pages=pages,
        page_cpu=PAGE_CPU,
        batch_cpu=BATCH_CPU,
        hz=hz,
        sleep_millisecs=sleep_millisecs,
        saved=saved or saturating(pages, 0.98),  # a long backlog
        counts_pages=counts_pages,
        run_delay=run_delay,
        blocked=blocked,
        unmerged=unmerged,
        skip_cpu=skip_cpu,
    )
    collection = KsmCollection(
        HostReader(  # after the simulator wrote the kernel's configuration
            roots, 4096, clock=clock, clock_ticks=CLOCK_TICKS
        ),
        tuning=TuningOptions(budget, steady),
    )
    return Rig(collection, sim, step)


def within(measured: float, expected: float, tolerance: float) -> bool:
    return abs(measured - expected) <= tolerance * abs(expected)


# --- the model recovered from the simulated ksmd -------------------------------------------


@pytest.mark.parametrize("hz", [100, 250, 1000])
def test_cost_per_page_and_pages_per_scan_recovered_within_1_percent(
    tmp_path: Path, hz: int
) -> None:
    r = rig(tmp_path, hz=hz, sleep_millisecs=15)
    r.run_scans(7)
    one_setting = r.advice().model
    assert one_setting is not None
    assert (one_setting.b, one_setting.settings_seen) == (0.0, 1)
    assert within(one_setting.n, PAGES, 0.01)
    r.sim.set(pages_to_scan=400)
    r.run_scans(8)
    model = r.advice().model
    assert model is not None
    assert model.settings_seen == 2
    assert within(model.c, PAGE_CPU, 0.01), model
    assert within(model.b, BATCH_CPU, 0.05), model
    assert within(model.n, PAGES, 0.01), model


def test_the_sleep_is_whole_jiffies_and_one_more_for_the_timer_wheel(tmp_path: Path) -> None:
    """15 ms at HZ=100 is msecs_to_jiffies() = 2 jiffies, and the timer wheel fires one later
    (calc_index()): each batch of 100 pages takes 30 ms from wake to wake, its 80 us of work
    inside the jiffy it started in; a scan of N pages takes floor(N/100) + 1 wake-ups."""
    r = rig(tmp_path, hz=100, sleep_millisecs=15)
    r.run_scans(7)
    model = r.advice().model
    assert model is not None
    assert (model.hz, model.hz_source, model.sleep_jiffies) == (100, "config", 2)
    wakeups = PAGES // 100 + 1
    assert within(model.full_scan_seconds(100), wakeups * 0.030, 0.01)
    assert within(r.sim.full_scan_seconds(), wakeups * 0.030, 1e-9)
    assert 100 * PAGE_CPU + BATCH_CPU < 0.010  # the batch ends within the jiffy it started in


def test_pages_per_scan_from_rmap_items_where_the_kernel_has_no_pages_scanned(
    tmp_path: Path,
) -> None:
    r = rig(tmp_path, counts_pages=False)
    r.run_scans(7)
    sysfs = Path(r.collection.reader.roots.sysfs, "kernel/mm/ksm")
    # The kernel's rmap items: pages_volatile_show() is ksm_rmap_items minus the other three.
    rmap_items = sum(
        int((sysfs / name).read_text())
        for name in ("pages_shared", "pages_sharing", "pages_unshared", "pages_volatile")
    )
    samples = parse_samples(render(r.collection))
    assert value(samples, "ksm_tuning_pages_per_full_scan") == rmap_items
    text = render(r.collection)
    assert "estimated as the kernel's rmap items" in text


# --- the recommendation, applied ------------------------------------------------------------


@pytest.mark.parametrize("hz", [100, 250, 1000])
def test_backlog_recommendation_applied_gives_its_prediction_within_the_budget(
    tmp_path: Path, hz: int
) -> None:
    budget = 0.01
    r = rig(tmp_path, hz=hz, sleep_millisecs=15, budget=budget)  # 2, 4 and 15 jiffies
    r.run_scans(7)
    advice = r.advice()
    assert advice.state == "backlog"
    rounds = []

    def settled() -> bool:  # a page more or less is within the noise of the measurement
        assert advice.pages_to_scan is not None
        return abs(advice.pages_to_scan - r.sim.pages_to_scan) <= 0.01 * r.sim.pages_to_scan

    for _ in range(5):  # apply, let the exporter refit, until it recommends what is set
        assert advice.recommended is not None
        if settled():
            break
        predicted, fitted = advice.recommended, advice.model
        r.apply(advice)
        r.run_scans(8)
        assert fitted is not None
        rounds.append((predicted, fitted.b, r.sim.full_scan_seconds(6), r.sim.cpu_ratio(6)))
        advice = r.advice()
    assert settled(), rounds
    assert advice.target_full_scan_seconds is not None
    assert within(r.sim.full_scan_seconds(6), advice.target_full_scan_seconds, 0.05), rounds
    assert r.sim.cpu_ratio(6) <= budget, rounds
    for predicted, b, seconds, ratio in rounds:  # each step did what it said, give or take 5%
        assert within(seconds, predicted.full_scan_seconds, 0.05), rounds
        if b:
            assert within(ratio, predicted.cpu_ratio, 0.05), rounds
        else:  # with one setting seen, b = 0 overstates the CPU of larger batches
            assert predicted.cpu_ratio * 0.6 < ratio < predicted.cpu_ratio, rounds


def test_steady_recommendation_is_the_steady_target(tmp_path: Path) -> None:
    r = rig(tmp_path, steady=60.0, budget=0.05, saved=saturating(PAGES // 2, 0.2))
    r.run_scans(8)
    advice = r.advice()
    assert advice.state == "steady"
    assert advice.target_full_scan_seconds == 60.0
    assert advice.recommended is not None
    r.apply(advice)
    r.run_scans(6)
    assert within(r.sim.full_scan_seconds(4), 60.0, 0.05)
    assert r.sim.cpu_ratio(4) <= 0.05


def test_budget_binds_a_steady_host_when_the_target_would_cost_more(tmp_path: Path) -> None:
    """A steady target of 5 s would need more than 0.5% of a CPU: the budget wins."""
    r = rig(tmp_path, steady=5.0, budget=0.005, saved=saturating(PAGES // 2, 0.2))
    r.run_scans(8)
    advice = r.advice()
    assert advice.state == "steady"
    assert advice.recommended is not None
    assert advice.target_full_scan_seconds is not None
    assert advice.target_full_scan_seconds > 5.0
    assert advice.recommended.cpu_ratio <= 0.005


# --- states ---------------------------------------------------------------------------------


def state_of(r: Rig) -> str | None:
    samples = parse_samples(render(r.collection))
    states = [
        s
        for (name, labels), v in samples.items()
        if name == "ksm_tuning_state" and v == 1
        for _, s in labels
    ]
    return states[0] if states else None


def test_each_state_is_reached(tmp_path: Path) -> None:
    saved = {"pages": 0}
    r = rig(tmp_path, saved=lambda _passes: saved["pages"], pages=50_000, step=0.5)
    r.run_scans(6)
    assert state_of(r) == "unprofitable"  # nothing merged: rmap items cost memory
    samples = parse_samples(render(r.collection))
    # run=2 unmerges and frees every rmap item (unmerge_and_remove_all_rmap_items());
    # run=0 would only stop ksmd.
    assert value(samples, "ksm_tuning_recommended_run") == 2
    for _ in range(4):
        saved["pages"] += 5_000
        r.run_scans(1)
    assert state_of(r) == "backlog"
    r.run_scans(5)
    assert state_of(r) == "steady"
    assert value(parse_samples(render(r.collection)), "ksm_tuning_recommended_run") == 1
    r.sim.set(run=0)
    assert state_of(r) == "stopped"
    r.sim.set(run=1)
    for stat in Path(r.collection.reader.roots.procfs).glob("*/ksm_stat"):
        if stat.is_file():
            stat.write_text("ksm_rmap_items 0\nksm_zero_pages 0\nksm_merging_pages 0\n")
    assert state_of(r) == "idle"


def test_one_noisy_scan_does_not_flip_the_state(tmp_path: Path) -> None:
    saved = {"pages": 20_000}
    r = rig(tmp_path, saved=lambda _passes: saved["pages"], pages=50_000, step=0.5)
    r.run_scans(6)
    assert state_of(r) == "steady"
    saved["pages"] = 21_000  # one scan sees 5% more, the next the old figure again
    r.run_scans(1)
    saved["pages"] = 20_000
    assert state_of(r) == "steady"
    r.run_scans(3)
    assert state_of(r) == "steady"
    saved["pages"] = 21_000  # two scans in a row: a real change
    r.run_scans(2)
    assert state_of(r) == "backlog"


def test_the_advice_is_absent_until_enough_scans_were_seen(tmp_path: Path) -> None:
    r = rig(tmp_path, pages=50_000, step=0.5)
    r.run_scans(2)
    text = render(r.collection)
    assert "ksm_tuning_state" not in text
    assert "ksm_tuning_recommended_pages_to_scan" not in text
    assert r.advice().scans_needed > 0


# --- the pure parts ------------------------------------------------------------------------


def scan(full_scans: int, saved: int, profit: int | None = 1) -> FullScan:
    return FullScan(
        at=float(full_scans),
        full_scans=full_scans,
        scans=1,
        running_seconds=1.0,
        cpu_seconds=0.1,
        pages_scanned=1000,
        pages_to_scan=100,
        sleep_millisecs=20,
        saved_pages=saved,
        memory_profit=profit,
    )


def test_raw_state_needs_three_full_scans_and_compares_with_three_back() -> None:
    assert raw_state([scan(1, 100), scan(2, 100), scan(3, 200)]) is None
    assert raw_state([scan(1, 100), scan(2, 100), scan(3, 100), scan(4, 102)]) == "backlog"
    assert raw_state([scan(1, 100), scan(2, 150), scan(3, 150), scan(4, 101)]) == "steady"
    assert raw_state([scan(1, 100), scan(4, 500, profit=0)]) == "unprofitable"


def test_the_state_changes_after_two_scans_in_a_row() -> None:
    trend = next_trend(Trend(), "steady")
    assert trend.state == "steady"
    trend = next_trend(trend, "backlog")
    assert trend.state == "steady"
    assert next_trend(trend, "steady").state == "steady"
    assert next_trend(trend, "backlog").state == "backlog"


def test_fit_of_two_settings_is_exact_and_falls_back_to_no_batch_cost() -> None:
    def at(p: int, cpu_per_page: float) -> FullScan:
        return replace(scan(1, 0), pages_to_scan=p, cpu_seconds=cpu_per_page * 1000)

    two = [at(100, 0.5e-6 + 30e-6 / 100), at(400, 0.5e-6 + 30e-6 / 400)]
    fitted = fit_cost(two, 1000, "pages_scanned")
    assert fitted is not None
    c, b, seen = fitted
    assert (round(c, 15), round(b, 12), seen) == (0.5e-6, 30e-6, 2)
    noisy = fit_cost([at(100, 1e-6), at(400, 2e-6)], 1000, "pages_scanned")
    assert noisy == (1.5e-6, 0.0, 1)  # CPU per page growing with the batch: noise
    close = fit_cost([at(1000, 0.53e-6), at(1120, 0.5e-6)], 1000, "pages_scanned")
    assert close is not None
    assert (round(close[0], 15), close[1], close[2]) == (0.515e-6, 0.0, 1)  # 12% apart: noise


def test_a_setting_that_gives_the_same_scan_is_kept(tmp_path: Path) -> None:
    """One page less a batch, as many batches a scan (60,000 pages in about 30 batches): no
    reason to change the setting."""
    r = rig(tmp_path, sleep_millisecs=15, pages=60_000, budget=0.05, step=0.1)
    r.run_scans(7)
    for _ in range(2):  # the recommendation, then the one refitted with the cost per batch
        r.apply(r.advice())
        r.run_scans(8)
    advice = r.advice()
    assert advice.pages_to_scan is not None
    assert advice.model is not None
    nearby = advice.pages_to_scan - 1
    assert advice.model.batches(nearby) == advice.model.batches(advice.pages_to_scan)
    r.sim.set(pages_to_scan=nearby)
    r.run_scans(8)
    assert r.advice().pages_to_scan == nearby


def test_kernel_advisor_settles_at_its_cpu_floor_not_its_minimum_pages() -> None:
    """scan_time_advisor(): per_page_cost = pages / cpu%, pages at least per_page_cost * 10
    (KSM_ADVISOR_MIN_CPU), capped last at advisor_max_pages_to_scan; scan time in whole
    seconds. 10 M pages at 0.5 us, 16 ms of sleep at HZ=250 (4 jiffies and the timer wheel's
    one: 20 ms a batch, plus the jiffies past the first half its work spans): the 200 s
    target alone would ask for about 1,000 pages, 2.5% of a CPU; the floor holds it at 10-11%."""
    model = Model(
        c=0.5e-6,
        b=0.0,
        n=10_000_000,
        n_source="pages_scanned",
        settings_seen=1,
        sleep_millisecs=16,
        hz=250,
    )

    def share(p: int) -> float:
        work = p * 0.5e-6
        return work / (0.020 + max(0.0, work - 0.002))

    choice = kernel_advisor(model, 200, 70, 500, 30000)
    assert choice.floor_binds
    assert 0.10 <= choice.predicted.cpu_ratio < 0.12
    # share(p) = 0.105 at p = 4,223
    assert choice.pages_to_scan == pytest.approx(4223, rel=0.05)
    assert choice.predicted.cpu_ratio == pytest.approx(share(choice.pages_to_scan), rel=0.02)
    capped = kernel_advisor(model, 200, 70, 500, 1000)
    assert capped.pages_to_scan == 1000
    assert capped.predicted.cpu_ratio == pytest.approx(share(1000), rel=0.01)


def test_kernel_advisor_steps_in_the_kernels_integer_arithmetic() -> None:
    """A scan of 0.4 s counts as 1 s; 8 ms of CPU as 0% -> 1%: per_page_cost = 500, the
    floor 5,000 pages, after the target term 500 * 100 / 20000 = 2 and the EWMA from 0."""
    step = advisor_step(500, 0.4, 0.008, 0, 0, limits=AdvisorLimits())
    assert (step.pages, step.change, step.scan_time, step.floor_binds) == (5000, 30, 1, True)

"""The model of ksmd's scans against a simulated ksmd that runs as mm/ksm.c does, in every
regime the model claims: scans of a few wake-ups, work spanning whole jiffies on a busy
host, smart_scan's cycle; and where it cannot hold, no prediction but the reason.

The simulator (tests/support/ksmd_simulator.py) takes floor(N/p) + 1 wake-ups a scan
(ksm_do_scan() returns at a scan's end), sleeps msecs_to_jiffies() from the jiffy a batch
ended in plus the timer wheel's one (calc_index()), waits for a CPU in proportion to its work,
and skips unmerged pages by smart_scan's ages; the exporter sees only the files it writes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ksm_exporter.derive.scan_cost import ScanCost
from ksm_exporter.derive.tuning import Model, TuningOptions
from ksm_exporter.sources.kernel_config import KernelHz
from ksm_exporter.status.build import build_status
from ksm_exporter.status.render import render_json, render_text
from ksm_exporter.status.snapshot import take_snapshot
from tests.support.ksmd_simulator import KsmdSimulator, saturating
from tests.support.sampling import CLOCK_TICKS, ManualClock, copy_fixture
from tests.test_tuning import Rig, rig

pytestmark = pytest.mark.unit

PAGES_96_MIB = 96 << 20 >> 12  # 24,576 pages
TOLERANCE = 0.25  # what the model claims; the figures below are much closer


def within(measured: float, expected: float, tolerance: float = TOLERANCE) -> bool:
    return abs(measured - expected) <= tolerance * abs(expected)


def assert_predicted(
    model: Model, sim: KsmdSimulator, scans: int, seconds_within: float, cpu_within: float
) -> float:
    """The simulated ksmd's last `scans` full scans against the model's prediction at the
    setting they ran at: the full-scan time and the CPU share, each within its tolerance.
    Returns the measured full-scan time."""
    pages = sim.pages_to_scan
    seconds, share = sim.full_scan_seconds(scans), sim.cpu_ratio(scans)
    predicted = model.predict(pages)
    assert within(seconds, predicted.full_scan_seconds, seconds_within), (pages, seconds, predicted)
    assert within(share, predicted.cpu_ratio, cpu_within), (pages, share, predicted)
    return seconds


def settle_at(r: Rig, pages_to_scan: int, scans: int) -> None:
    r.sim.set(pages_to_scan=pages_to_scan)
    r.run_scans(scans)


def test_a_scan_takes_floor_n_over_p_plus_one_wakeups() -> None:
    """Where p divides N the last wake-up returns no page and only ends the scan."""
    model = Model(
        c=1e-7, b=0.0, n=20_000, n_source="pages_scanned", settings_seen=1, sleep_millisecs=20
    )
    assert [model.batches(p) for p in (1000, 999, 1001, 20_000, 20_001)] == [21, 21, 20, 2, 1]
    # 20 ms at HZ=250: 5 jiffies, and the one the timer wheel adds: 24 ms a wake-up.
    assert model.full_scan_seconds(20_000) == pytest.approx(2 * 0.024)
    assert model.full_scan_seconds(20_001) == pytest.approx(0.024)


def test_short_scans_of_a_few_wakeups(tmp_path: Path) -> None:
    """96 MiB registered, 4 and 5 wake-ups a scan (about 0.1 s): predicted within 25%."""
    r = rig(tmp_path, pages=PAGES_96_MIB, budget=0.05, steady=0.1, step=0.5)
    r.sim.page_cpu = 0.3e-6
    settle_at(r, 1326, 25)  # 19 wake-ups: the setting the model is fitted at
    model = r.advice().model
    assert model is not None
    for pages in (5461, 7148):
        r.sim.set(pages_to_scan=pages)
        r.run_scans(3)
        assert model.batches(pages) in (4, 5)
        assert_predicted(model, r.sim, 3, 0.05, 0.10)


def test_work_spanning_jiffies_on_a_busy_host(tmp_path: Path) -> None:
    """ksmd waits twice its CPU time for a CPU (schedstat's run_delay): a batch of 30,000
    pages then spans several jiffies before its sleep starts, and the scan lengthens by them."""
    r = rig(tmp_path, pages=PAGES_96_MIB, budget=0.2, step=0.5, run_delay=2.0)
    r.sim.page_cpu = 0.35e-6
    settle_at(r, 3000, 25)
    model = r.advice().model
    assert model is not None
    assert model.run_delay == pytest.approx(2.0, rel=0.01)
    r.sim.set(pages_to_scan=30_000)  # one wake-up a scan: 26 ms of work and waiting
    r.run_scans(4)
    seconds = assert_predicted(model, r.sim, 4, 0.10, 0.10)
    assert seconds > 0.040  # 24 ms asleep at the least: the work's jiffies count


def test_time_off_a_cpu_is_solved_from_scans_that_outlast_their_sleeps(tmp_path: Path) -> None:
    """ksmd asleep on locks 3 s per CPU-second (a busy guest's page locks): no counter shows
    it, but scans of 5 wake-ups of 20,000 pages outlast their 5 sleeps of 24 ms by far; the
    time solved from them predicts one wake-up a scan of all 96,000 pages."""
    r = rig(tmp_path, pages=96_000, budget=0.5, step=0.5, blocked=3.0)
    r.sim.page_cpu = 0.3e-6
    settle_at(r, 20_000, 13)
    model = r.advice().model
    assert model is not None
    assert model.run_delay == 0.0
    assert model.off_cpu == pytest.approx(3.0, rel=0.25)
    r.sim.set(pages_to_scan=100_000)
    r.run_scans(13)
    assert_predicted(model, r.sim, 12, 0.10, 0.10)


def test_smart_scan_cycle_is_calibrated_over_whole_cycles(tmp_path: Path) -> None:
    """Half the pages never merge: smart_scan looks at them 1 scan in 9 once they aged, so N
    and the time of a scan repeat over 9 scans. The model waits for a whole cycle, then
    predicts the mean over one."""
    r = rig(tmp_path, pages=40_000, budget=0.2, step=0.25, unmerged=20_000, skip_cpu=0.05e-6)
    r.sim.set(pages_to_scan=2000)
    r.run_scans(16)  # past the early ages: visited 1 scan in 9 from here
    r.run_scans(28)  # scans shorter than 2 samples: three whole cycles
    cost = r.collection.reader.sampler.cost
    skipped = [scan for scan in cost.scans if scan.pages_skipped]
    assert skipped, "smart_scan skipped nothing"
    model = r.advice().model
    assert model is not None
    assert model.scans >= 27
    assert model.skipped > 0
    r.run_scans(9)
    assert_predicted(model, r.sim, 9, 0.15, 0.15)
    # At 6,000 pages a visit scan (40,000 pages) takes 7 wake-ups and a skipping one
    # (20,000) 4: 13/3 on average over a cycle, where the mean N (22,222) would give 4.
    r.sim.set(pages_to_scan=6000)
    r.run_scans(18)
    assert_predicted(model, r.sim, 18, 0.05, 0.10)


def test_a_part_of_a_smart_scan_cycle_gives_no_model(tmp_path: Path) -> None:
    r = rig(tmp_path, pages=40_000, step=0.25, unmerged=20_000)
    r.sim.set(pages_to_scan=2000)
    r.run_scans(16)
    r.sim.set(pages_to_scan=4000)  # a new setting: its scans start a new window
    r.collection.reader.sampler.cost = ScanCost()  # a fresh sampler
    r.run_scans(6)
    advice = r.advice()
    assert advice.model is None
    assert advice.scans_needed >= 1


def test_where_hz_is_wrong_the_advice_says_the_model_does_not_hold(tmp_path: Path) -> None:
    """A kernel at HZ=1000 without a readable configuration: HZ=250 assumed gives sleeps
    4x too long at 2 ms; the model misses the measured scan, so nothing is predicted."""
    r = rig(tmp_path, hz=1000, sleep_millisecs=2)
    config = Path(r.collection.reader.roots.procfs, "config.gz")
    config.unlink()
    r.collection.reader.kernel_hz = KernelHz(250, "assumed")  # as read without it
    r.run_scans(7)
    advice = r.advice()
    assert advice.model is not None
    assert advice.model.hz_source == "assumed"
    assert advice.not_holding is not None
    assert "HZ assumed" in advice.not_holding
    assert (advice.current, advice.recommended) == (None, None)


def test_status_says_where_the_model_does_not_hold(tmp_path: Path) -> None:
    roots = copy_fixture("current", tmp_path)
    clock = ManualClock()
    sim = KsmdSimulator(
        roots,
        clock,
        pages=20_000,
        page_cpu=0.5e-6,
        batch_cpu=30e-6,
        hz=1000,
        pages_to_scan=500,
        saved=saturating(20_000, 0.99),
    )
    sim.set(sleep_millisecs=2)
    Path(roots.procfs, "config.gz").unlink()  # HZ cannot be read: 250 is assumed
    snapshot = take_snapshot(
        roots,
        20.0,
        clock=clock,
        sleep=lambda seconds: sim.advance_to(clock.now + seconds),
        page_size=4096,
        clock_ticks=CLOCK_TICKS,
        tuning=TuningOptions(0.05, 200.0),
    )
    advice = json.loads(render_json(build_status(snapshot)))["advice"]
    assert advice["model"]["hz_source"] == "assumed"
    assert "HZ assumed" in advice["not_holding"]
    assert advice["predicted"] == {"current": None, "recommended": None}
    assert advice["others"]["kernel_advisor"] is None  # it would be predicted from the model
    text = render_text(build_status(snapshot))
    assert "Predictions    none: the model does not hold here:" in text
    assert "HZ 250, assumed" in text


def test_without_a_sleep_nothing_is_predicted(tmp_path: Path) -> None:
    """sleep_millisecs 0: wait_event_freezable_timeout() with a timeout of 0 does not sleep,
    so a scan can be shorter than a jiffy and ksmd runs as long as the scheduler lets it."""
    r = rig(tmp_path, pages=20_000, sleep_millisecs=0, step=0.5)
    r.sim.set(pages_to_scan=1000)
    r.run(5.0)  # 10 samples, some 50 scans each
    advice = r.advice()
    assert advice.model is not None
    assert advice.model.sleep_jiffies == 0
    assert advice.not_holding is not None
    assert "never sleeps" in advice.not_holding
    assert (advice.current, advice.recommended) == (None, None)

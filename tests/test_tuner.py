"""`ksm-exporter tune` against a simulated ksmd: it reads the tree the simulator writes, and
what it writes to pages_to_scan the simulated ksmd takes up from its next batch."""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import pytest

from ksm_exporter.derive.tuning import TuningOptions
from ksm_exporter.sources.roots import Roots
from ksm_exporter.tune.command import CannotTune, check_start
from ksm_exporter.tune.ksm_writer import KsmWriter
from ksm_exporter.tune.tuner import DECIDE_SECONDS, Overridden, Tuner
from tests.support.ksmd_simulator import (
    KsmdSimulator,
    saturating,
    simulated_ksmd,
    window_shares,
)
from tests.support.sampling import CLOCK_TICKS, copy_fixture, write_ksm

pytestmark = pytest.mark.unit

PAGES = 32_768  # 128 MiB registered
BUDGET = 0.1
STEP = 0.5  # seconds between the tuner's ticks


def ksm_file(roots: Roots, name: str) -> Path:
    return Path(roots.sysfs) / "kernel" / "mm" / "ksm" / name


def setup(tmp_path: Path, *, dry_run: bool = False) -> tuple[KsmdSimulator, Tuner]:
    sim = simulated_ksmd(tmp_path, PAGES, saturating(PAGES // 2, 0.5))
    tuner = Tuner(
        sim.roots,
        TuningOptions(cpu_budget=BUDGET, steady_full_scan_seconds=20),
        dry_run=dry_run,
        clock=sim.clock,
        clock_ticks=CLOCK_TICKS,
    )
    return sim, tuner


def run(sim: KsmdSimulator, tuner: Tuner, seconds: float) -> list[tuple[float, int]]:
    """Ticks the tuner; the simulated ksmd takes what it writes. (time, ksmd CPU ns) a tick."""
    cpu: list[tuple[float, int]] = []
    end = sim.clock.now + seconds
    while sim.clock.now < end:
        sim.advance_to(sim.clock.now + STEP)
        tuner.tick()
        written = int(ksm_file(sim.roots, "pages_to_scan").read_text())
        if written != sim.pages_to_scan:
            sim.set(pages_to_scan=written)
        cpu.append((sim.clock.now, sim.cpu_ns))
    return cpu


def test_steps_are_bounded_and_the_pace_ends_within_the_budget(tmp_path: Path) -> None:
    sim, tuner = setup(tmp_path)
    cpu = run(sim, tuner, 600)
    changes = [c for c in tuner.changes if c.setting == "pages_to_scan"]
    values = [100] + [c.value for c in changes]
    assert len(values) > 3
    for before, after in itertools.pairwise(values):
        assert after <= 2 * before
    # Once the tuner knows the cost (its first change), no 10 s window exceeds the budget
    # for longer than one decision.
    first_change = next(i for i, (_, _) in enumerate(cpu) if i * STEP >= DECIDE_SECONDS)
    over = [s for s in window_shares(cpu[first_change:], 10, STEP) if s > BUDGET * 1.05]
    assert len(over) * STEP <= DECIDE_SECONDS + 10
    # Merged and steady: a full scan about every 20 s, far under the budget.
    assert sim.full_scan_seconds() == pytest.approx(20, rel=0.25)
    assert sim.cpu_ratio() < BUDGET


def test_new_memory_is_scanned_at_the_budget_pace_within_seconds(tmp_path: Path) -> None:
    sim, tuner = setup(tmp_path)
    run(sim, tuner, 600)
    steady = sim.pages_to_scan
    sim.pages = 2 * PAGES  # a guest boots: as much memory again to scan
    write_ksm(sim.roots, "pages_unshared", PAGES)
    before = len(tuner.changes)
    run(sim, tuner, 3 * DECIDE_SECONDS)
    raised = [c for c in tuner.changes[before:] if c.rule == "new_memory"]
    assert raised
    assert max(c.value for c in raised) >= 2 * steady


def test_an_external_write_stops_it_and_nothing_more_is_written(tmp_path: Path) -> None:
    sim, tuner = setup(tmp_path)
    run(sim, tuner, 60)
    sim.set(pages_to_scan=777)
    with pytest.raises(Overridden, match=r"pages_to_scan changed from .* to 777"):
        run(sim, tuner, 10)
    assert ksm_file(sim.roots, "pages_to_scan").read_text().strip() == "777"


def test_dry_run_writes_nothing_and_says_what_it_would_do(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sim, tuner = setup(tmp_path, dry_run=True)
    with caplog.at_level(logging.INFO, logger="ksm_exporter.tune"):
        run(sim, tuner, 120)
    assert sim.pages_to_scan == 100
    assert ksm_file(sim.roots, "pages_to_scan").read_text().strip() == "100"
    would = [r for r in caplog.records if r.getMessage() == "would change"]
    assert would
    assert all(getattr(r, "reason", "") for r in would)


def test_refuses_beside_the_kernel_advisor_unless_told_to_take_over(tmp_path: Path) -> None:
    roots = copy_fixture("current", tmp_path)  # advisor_mode: none [scan-time]
    writer = KsmWriter(roots.sysfs)
    with pytest.raises(CannotTune, match="--take-over"):
        check_start(roots, writer, dry_run=False, take_over=False)
    assert "[scan-time]" in ksm_file(roots, "advisor_mode").read_text()
    check_start(roots, writer, dry_run=False, take_over=True)
    assert ksm_file(roots, "advisor_mode").read_text() == "none\n"


def test_refuses_beside_ksmtuned(tmp_path: Path) -> None:
    roots = copy_fixture("current", tmp_path)
    ksm_file(roots, "advisor_mode").write_text("[none] scan-time\n")
    rival = Path(roots.procfs) / "4242"
    rival.mkdir()
    (rival / "comm").write_text("ksmtuned\n")
    with pytest.raises(CannotTune, match=r"ksmtuned \(pid 4242\)"):
        check_start(roots, KsmWriter(roots.sysfs), dry_run=False, take_over=True)


def test_refuses_without_ksm(tmp_path: Path) -> None:
    roots = Roots(str(tmp_path / "sys"), str(tmp_path / "proc"))
    with pytest.raises(CannotTune, match="no KSM"):
        check_start(roots, KsmWriter(roots.sysfs), dry_run=False, take_over=False)


def test_take_over_needs_an_advisor_to_take_over_from(tmp_path: Path) -> None:
    roots = copy_fixture("current", tmp_path)
    ksm_file(roots, "advisor_mode").unlink()
    with pytest.raises(CannotTune, match="no advisor_mode"):
        check_start(roots, KsmWriter(roots.sysfs), dry_run=False, take_over=True)

"""The tuner's rules for a year on one host, against a simulated ksmd: a way back from its
own unmerge, a restart that knows what it wrote, the kernel's `run` 5, memory pressure, a
jump in what a page costs, a dry run beside the kernel's advisor, and sleep_millisecs 0.

What the tuner writes the simulated ksmd takes up from its next batch; run=2 unmerges as
unmerge_and_remove_all_rmap_items() does (full_scans back to 0, every rmap item freed)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from ksm_exporter.derive.tuning import TuningOptions
from ksm_exporter.tune.state_file import StateFile
from ksm_exporter.tune.tuner import DECIDE_SECONDS, GUARD_SECONDS, Tuner
from tests.support.ksmd_simulator import (
    NANOSECONDS,
    KsmdSimulator,
    saturating,
    simulated_ksmd,
    window_shares,
)
from tests.support.sampling import CLOCK_TICKS, KSMD_PID, rewrite, write_ksm, write_schedstat

pytestmark = pytest.mark.unit

STEP = 0.5
BUDGET = 0.1
# The fixture's host has 16,384,000 kB; 200,000 distinct pages cost 12.2 MiB of rmap items,
# more than 1% of MemTotal once MemTotal is 1 GiB: unmerging them pays.
DISTINCT = 200_000
OPTIONS = TuningOptions(cpu_budget=BUDGET, steady_full_scan_seconds=20, probe_seconds=300)


def ksm_value(sim: KsmdSimulator, name: str) -> str:
    return (Path(sim.roots.sysfs) / "kernel" / "mm" / "ksm" / name).read_text().strip()


def meminfo(sim: KsmdSimulator, total_kb: int, available_kb: int) -> None:
    rewrite(
        Path(sim.roots.procfs) / "meminfo",
        f"MemTotal: {total_kb} kB\nMemFree: {available_kb} kB\nMemAvailable: {available_kb} kB\n"
        "Buffers: 0 kB\nCached: 0 kB\n",
    )


def register(sim: KsmdSimulator, pid: int) -> None:
    """A process registers (a QEMU with mem-merge on): its ksm_stat says ksm_mergeable."""
    directory = Path(sim.roots.procfs) / str(pid)
    directory.mkdir()
    (directory / "comm").write_text("qemu-system-x86\n")
    (directory / "cmdline").write_bytes(b"qemu-system-x86_64\0")
    (directory / "cgroup").write_text("0::/\n")
    (directory / "ksm_stat").write_text(
        "ksm_rmap_items 0\nksm_zero_pages 0\nksm_merging_pages 0\nksm_process_profit 0\n"
        "ksm_merge_any: no\nksm_mergeable: yes\n"
    )


def tuner_for(sim: KsmdSimulator, state: Path | None = None, *, dry_run: bool = False) -> Tuner:
    return Tuner(
        sim.roots,
        OPTIONS,
        dry_run=dry_run,
        clock=sim.clock,
        wall_clock=sim.clock,
        clock_ticks=CLOCK_TICKS,
        state_file=None if state is None else StateFile(str(state)),
    )


def run(sim: KsmdSimulator, tuner: Tuner, seconds: float) -> list[tuple[float, int]]:
    """Ticks the tuner; the simulated ksmd takes what it writes. (time, CPU ns) a tick."""
    cpu: list[tuple[float, int]] = []
    end = sim.clock.now + seconds
    while sim.clock.now < end:
        sim.advance_to(sim.clock.now + STEP)
        tuner.tick()
        written = {name: int(ksm_value(sim, name)) for name in ("run", "pages_to_scan")}
        if written["run"] != sim.run:
            sim.set(run=written["run"])
        if written["pages_to_scan"] != sim.pages_to_scan:
            sim.set(pages_to_scan=written["pages_to_scan"])
        cpu.append((sim.clock.now, sim.cpu_ns))
    return cpu


def run_until(sim: KsmdSimulator, tuner: Tuner, done: object, seconds: float) -> float:
    """Seconds until `done()` holds, ticking as run() does; fails past `seconds`."""
    start = sim.clock.now
    while not done():  # type: ignore[operator]
        assert sim.clock.now - start < seconds, f"not within {seconds} s"
        run(sim, tuner, STEP)
    return sim.clock.now - start


def distinct_host(tmp_path: Path) -> KsmdSimulator:
    """DISTINCT pages that never merge on a 1 GiB host."""
    sim = simulated_ksmd(tmp_path, DISTINCT, saturating(0))
    meminfo(sim, 1 << 20, 800 << 10)
    return sim


def unmerged_by(sim: KsmdSimulator, tuner: Tuner) -> None:
    run_until(sim, tuner, lambda: sim.run == 2, 900)
    assert tuner.changes[-1].setting == "run"
    assert "more than it saves" in tuner.changes[-1].reason


def test_distinct_memory_is_unmerged_and_a_guest_that_registers_brings_ksm_back(
    tmp_path: Path,
) -> None:
    sim = distinct_host(tmp_path)
    tuner = tuner_for(sim)
    unmerged_by(sim, tuner)
    run(sim, tuner, 60)
    assert sim.run == 2  # nothing new: it stays unmerged
    # Two identical guests boot: they register, and their pages merge once scanned.
    register(sim, 5001)
    sim.pages = DISTINCT + 100_000
    sim.saved = saturating(50_000, 0.5)
    waited = run_until(sim, tuner, lambda: sim.run == 1, DECIDE_SECONDS + STEP)
    assert waited <= DECIDE_SECONDS + STEP
    assert "registered with KSM" in tuner.changes[-1].reason
    run(sim, tuner, 120)
    assert int(ksm_value(sim, "pages_sharing")) > 40_000
    assert sim.run == 1


def test_with_nothing_new_a_probe_looks_again_and_its_cost_is_bounded(tmp_path: Path) -> None:
    sim = distinct_host(tmp_path)
    tuner = tuner_for(sim)
    unmerged_by(sim, tuner)
    unmerged_at = sim.clock.now
    run_until(sim, tuner, lambda: sim.run == 1, OPTIONS.probe_seconds + DECIDE_SECONDS + STEP)
    assert sim.clock.now - unmerged_at >= OPTIONS.probe_seconds
    assert "a probe" in tuner.changes[-1].reason
    cpu_at_probe = sim.cpu_ns
    probe_start = sim.clock.now
    # Still nothing merges: unmerged again, having used at most the budget meanwhile.
    run_until(sim, tuner, lambda: sim.run == 2, 600)
    probe_seconds = sim.clock.now - probe_start
    assert (sim.cpu_ns - cpu_at_probe) / NANOSECONDS <= BUDGET * 1.25 * probe_seconds


def test_a_restarted_tuner_knows_its_own_run_and_leaves_an_operators(tmp_path: Path) -> None:
    sim = distinct_host(tmp_path)
    state = tmp_path / "tune.json"
    first = tuner_for(sim, state)
    unmerged_by(sim, first)
    first.save(force=True, state="stopped", why="told to stop")
    first.close()
    recorded = json.loads(state.read_text())
    assert recorded["written"]["run"] == 2
    assert recorded["state"] == "stopped"

    # A guest registers while no tuner runs; the restarted one reads what the first wrote.
    register(sim, 5002)
    second = tuner_for(sim, state)
    run_until(sim, second, lambda: sim.run == 1, DECIDE_SECONDS + STEP)
    assert "1 process(es) registered" in second.changes[-1].reason
    second.close()

    # An operator's run=2, with a state file that says the tuner last wrote run=1: theirs.
    sim.set(run=2)
    third = tuner_for(sim, state)
    register(sim, 5003)
    run(sim, third, 60)
    assert sim.run == 2
    assert third.changes == []


def test_memory_going_offline_is_not_taken_for_an_operator(tmp_path: Path) -> None:
    sim = simulated_ksmd(tmp_path, 32_768, saturating(16_384))
    tuner = tuner_for(sim)
    run(sim, tuner, 30)
    # ksm_memory_callback(MEM_GOING_OFFLINE): run reads 5 until the memory is offline.
    write_ksm(sim.roots, "run", 5)
    for _ in range(int(2 * DECIDE_SECONDS / STEP)):
        sim.clock.now += STEP
        assert tuner.tick() is None
    write_ksm(sim.roots, "run", 1)
    run(sim, tuner, 30)  # no Overridden raised: it goes on


def test_short_of_memory_it_never_unmerges_and_grants_the_second_budget(
    tmp_path: Path,
) -> None:
    sim = distinct_host(tmp_path)
    meminfo(sim, 1 << 20, 50 << 10)  # MemAvailable 5% of MemTotal
    tuner = tuner_for(sim)
    cpu = run(sim, tuner, 400)
    assert sim.run == 1
    assert all(change.setting == "pages_to_scan" for change in tuner.changes)
    reasons = [change.reason for change in tuner.changes]
    assert all("short of memory: MemAvailable is 4.9% of MemTotal" in r for r in reasons)
    assert any("as fast as the 25.0% budget allows" in r for r in reasons)
    assert max(window_shares(cpu, 10, STEP)) <= OPTIONS.pressure_cpu_budget * 1.25


def test_a_jump_in_what_a_page_costs_is_undone_within_a_decision(tmp_path: Path) -> None:
    sim = simulated_ksmd(tmp_path, 65_536, saturating(1_000, 0.5))
    tuner = tuner_for(sim)
    register(sim, 5004)
    run(sim, tuner, 30)
    sim.pages = 3 * 65_536  # a guest boots: new memory, scanned at the budget's pace
    register(sim, 5005)
    run(sim, tuner, 60)
    # Its pages are distinct: checksums and unstable-tree searches, four times the cost.
    sim.page_cpu *= 4
    cpu = run(sim, tuner, 120)
    shares = window_shares(cpu, 10, STEP)
    # Every 10 s window that starts once the guard lowered the pace is within 1.25x.
    settle = int((GUARD_SECONDS + 2 * STEP) / STEP)
    assert max(shares[settle:]) <= BUDGET * 1.25, max(shares[settle:])


def warning(record: logging.LogRecord) -> bool:
    return record.name == "ksm_exporter.tune" and record.levelno >= logging.WARNING


def test_a_dry_run_beside_the_advisor_tells_its_writes_from_an_operators(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sim = simulated_ksmd(tmp_path, 32_768, saturating(16_384), advisor=True)
    tuner = tuner_for(sim, dry_run=True)
    with caplog.at_level(logging.DEBUG, logger="ksm_exporter.tune"):
        run(sim, tuner, 30)
        for pages in (137, 180, 240):  # the advisor, after each scan
            sim.set(pages_to_scan=pages)
            run(sim, tuner, 10)
        advisor = [r for r in caplog.records if "scan-time advisor set" in r.getMessage()]
        assert len(advisor) == 3
        assert not [r for r in caplog.records if warning(r)]
        assert [r for r in caplog.records if r.getMessage() == "would change"]
        # The advisor switched off by someone, then their write: an operator's.
        (Path(sim.roots.sysfs) / "kernel/mm/ksm/advisor_mode").write_text("[none] scan-time\n")
        run(sim, tuner, 10)
        sim.set(pages_to_scan=999)
        run(sim, tuner, 10)
    warned = [r for r in caplog.records if warning(r)]
    assert len(warned) == 1
    assert "would stop here" in warned[0].getMessage()
    assert ksm_value(sim, "pages_to_scan") == "999"


def test_sleep_0_gets_one_line_and_no_change(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sim = simulated_ksmd(tmp_path, 32_768, saturating(16_384), pages_to_scan=1000)
    sim.set(sleep_millisecs=0)
    tuner = tuner_for(sim)
    cpu_ns = 0
    with caplog.at_level(logging.INFO, logger="ksm_exporter.tune"):
        for _ in range(int(60 / STEP)):
            sim.clock.now += STEP
            cpu_ns += int(STEP * NANOSECONDS)  # ksmd never sleeps: a whole CPU
            write_ksm(sim.roots, "full_scans", int(sim.clock.now))
            write_schedstat(sim.roots, KSMD_PID, cpu_ns)
            assert tuner.tick() is None
    lines = [r.getMessage() for r in caplog.records if "sleep_millisecs is 0" in r.getMessage()]
    assert len(lines) == 1
    assert ksm_value(sim, "pages_to_scan") == "1000"


def test_a_raise_that_overshoots_is_undone_within_seconds(tmp_path: Path) -> None:
    sim = simulated_ksmd(tmp_path, 65_536, saturating(1_000, 0.5))
    tuner = tuner_for(sim)
    run(sim, tuner, 120)  # settled
    register(sim, 5006)  # a guest registers: the pace goes up at the next decision
    sim.pages = 2 * 65_536
    before = len(tuner.changes)
    run_until(sim, tuner, lambda: len(tuner.changes) > before, DECIDE_SECONDS + STEP)
    raised_at = sim.clock.now
    assert tuner.changes[-1].rule == "new_memory"
    # ksmd reaches the guest's pages, which cost 300 times those the model was fitted on:
    # the raised batches take over a fifth of a CPU.
    sim.page_cpu *= 300
    run_until(sim, tuner, lambda: len(tuner.changes) > before + 1, GUARD_SECONDS + 2 * STEP)
    undo = tuner.changes[-1]
    assert undo.rule == "over_budget"
    assert "after pages_to_scan was raised to" in undo.reason
    assert undo.value < tuner.changes[-2].value
    assert sim.clock.now - raised_at <= GUARD_SECONDS + 2 * STEP

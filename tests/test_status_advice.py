"""`status` advice: the recommendation with its commands, watched on a simulated ksmd, and
what ksmtuned/MOM and the kernel's advisor would set instead."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ksm_exporter.derive.tuning import TuningOptions
from ksm_exporter.sources.roots import Roots
from ksm_exporter.status.render import render_json, render_text
from ksm_exporter.status.snapshot import Snapshot, take_snapshot
from tests.support.ksmd_simulator import KsmdSimulator, run_for, saturating
from tests.support.sampling import CLOCK_TICKS, ManualClock, copy_fixture, write_ksm

pytestmark = pytest.mark.unit

PAGES = 20_000
KIB = 1024


def watched(
    tmp_path: Path, *, window: float = 30.0, budget: float = 0.05, advisor: bool = False
) -> tuple[Snapshot, KsmdSimulator, Roots]:
    """`status` watching a simulated ksmd (0.4 s a full scan) on the `current` fixture."""
    roots = copy_fixture("current", tmp_path)
    mode = "none [scan-time]" if advisor else "[none] scan-time"
    (Path(roots.sysfs) / "kernel" / "mm" / "ksm" / "advisor_mode").write_text(mode + "\n")
    clock = ManualClock()
    sim = KsmdSimulator(
        roots,
        clock,
        pages=PAGES,
        page_cpu=0.5e-6,
        batch_cpu=30e-6,
        hz=250,
        pages_to_scan=1000,
        saved=saturating(PAGES, 0.99),
    )

    def sleep(seconds: float) -> None:
        sim.advance_to(clock.now + seconds)

    snapshot = take_snapshot(
        roots,
        window,
        3,
        clock=clock,
        sleep=sleep,
        page_size=4096,
        clock_ticks=CLOCK_TICKS,
        tuning=TuningOptions(budget, 200.0),
    )
    return snapshot, sim, roots


def test_advice_block_gives_the_command_and_its_prediction_holds(tmp_path: Path) -> None:
    snapshot, sim, roots = watched(tmp_path)
    document = json.loads(render_json(snapshot))["advice"]
    recommended = document["recommended"]
    pages = recommended["pages_to_scan"]
    assert document["state"] == "backlog"
    assert recommended["commands"] == [f"echo {pages} > {roots.sysfs}/kernel/mm/ksm/pages_to_scan"]
    text = render_text(snapshot).splitlines()
    start = text.index("Run as root:")
    assert text[start + 1] == f"  echo {pages} > {roots.sysfs}/kernel/mm/ksm/pages_to_scan"
    assert "Advice         backlog: saved memory still grows: as fast as the budget allows" in text
    assert [line for line in text if line.startswith("Now ")] == [
        "Now            0.40 s a full scan, 2.63% of a CPU"
    ]
    assert max(len(line) for line in text if str(tmp_path) not in line) <= 80

    sim.set(pages_to_scan=pages)  # as the operator would, then watch ksmd
    run_for(sim, lambda: None, 20.0, 1.0)
    predicted = document["predicted"]["recommended"]
    assert sim.full_scan_seconds(10) == pytest.approx(predicted["full_scan_seconds"], rel=0.05)
    # One setting seen: no cost per batch yet, and the sleep measured at another batch size;
    # still within 5%, and within the budget.
    assert sim.cpu_ratio(10) == pytest.approx(predicted["ksmd_cpu_ratio"], rel=0.05)
    assert sim.cpu_ratio(10) <= 0.05
    assert document["model"]["pages_to_scan_values_seen"] == 1


def test_where_the_kernel_advisor_runs_the_advice_caps_its_pages(tmp_path: Path) -> None:
    """pages_to_scan_store() returns EINVAL while the advisor runs, and scan_time_advisor()
    raises its pages to 10% of a CPU whatever advisor_max_cpu says: only
    advisor_max_pages_to_scan, applied last, binds."""
    snapshot, _sim, roots = watched(tmp_path, advisor=True, budget=0.05)
    document = json.loads(render_json(snapshot))["advice"]
    pages = document["recommended"]["pages_to_scan"]
    ksm = f"{roots.sysfs}/kernel/mm/ksm"
    assert document["recommended"]["commands"] == [
        f"echo {pages} > {ksm}/advisor_max_pages_to_scan"
    ]
    text = render_text(snapshot)
    assert "only its page cap binds" in text


def test_short_window_says_how_many_more_scans_and_how_long_to_watch(tmp_path: Path) -> None:
    snapshot, _sim, _roots = watched(tmp_path, window=1.0)
    lines = render_text(snapshot).splitlines()
    advice = lines[lines.index("Advice         unknown until 3 more full scans complete") :]
    assert advice[1] == f"{'':15}watch longer: --window 3"
    assert json.loads(render_json(snapshot))["advice"]["full_scans_needed"] == 3


def test_ksmtuned_and_the_kernel_advisor_side_by_side(tmp_path: Path) -> None:
    snapshot, _sim, _roots = watched(tmp_path)
    others = json.loads(render_json(snapshot))["advice"]["others"]
    # The fixture: 16,384,000 kB of RAM, 10,100,000 kB free (MemFree + Buffers + Cached), no
    # QEMU memory in sight: below the 20% threshold, ksmtuned stops KSM.
    assert others["ksmtuned"] == {
        "run": 0,
        "pages_to_scan": None,
        "sleep_millisecs": None,
        "reason": "QEMU's memory plus the threshold fits in RAM and free memory is above it",
        "predicted": None,
    }
    # 20,000 pages at 0.5 us: one full scan costs about 10 ms, under a second, so
    # scan_time_advisor() counts 1 s and 1% of a CPU, and its floor of 10x per_page_cost
    # raises the pages to advisor_max_pages_to_scan: the target of 200 s does not hold it
    # at advisor_min_pages_to_scan (500), which is only where it starts.
    advisor = others["kernel_advisor"]
    assert (advisor["advisor_target_scan_time"], advisor["advisor_max_cpu"]) == (200, 70)
    assert advisor["pages_to_scan"] == 30000
    # One batch a scan: 20,000 pages of CPU and one sleep of 5 jiffies at HZ 250.
    assert advisor["predicted"]["full_scan_seconds"] == pytest.approx(
        20_000 * 0.5e-6 + 0.020, rel=0.1
    )


def test_ksmtuned_steps_from_free_memory_and_qemu_memory(tmp_path: Path) -> None:
    roots = copy_fixture("current", tmp_path / "tree")
    meminfo = Path(roots.procfs) / "meminfo"
    # QEMU (pid 1201, comm qemu-system-x86) holds 14 GB: with free memory above the threshold
    # ksmtuned decays pages_to_scan by 50, and sleeps 10 ms on a host this size.
    (Path(roots.procfs) / "1201" / "statm").write_text("4000000 3500000 100 1 0 3600000 0\n")
    snapshot = take_snapshot(roots, 0.1, page_size=4096, sleep=lambda _s: None)
    choice = json.loads(render_json(snapshot))["advice"]["others"]["ksmtuned"]
    assert (choice["run"], choice["pages_to_scan"], choice["sleep_millisecs"]) == (1, 950, 10)
    # Free memory below 20% of RAM: boost by 300, clamped to 1250.
    meminfo.write_text(
        "MemTotal: 16384000 kB\nMemFree: 1000000 kB\nBuffers: 0 kB\nCached: 1000000 kB\n"
    )
    snapshot = take_snapshot(roots, 0.1, page_size=4096, sleep=lambda _s: None)
    choice = json.loads(render_json(snapshot))["advice"]["others"]["ksmtuned"]
    assert (choice["pages_to_scan"], choice["sleep_millisecs"]) == (1250, 10)
    # A 4 GiB host: the sleep scales by 16 GiB / MemTotal.
    meminfo.write_text("MemTotal: 4194304 kB\nMemFree: 100000 kB\nBuffers: 0 kB\nCached: 0 kB\n")
    write_ksm(roots, "pages_to_scan", 100)
    snapshot = take_snapshot(roots, 0.1, page_size=4096, sleep=lambda _s: None)
    choice = json.loads(render_json(snapshot))["advice"]["others"]["ksmtuned"]
    assert (choice["pages_to_scan"], choice["sleep_millisecs"]) == (400, 40)

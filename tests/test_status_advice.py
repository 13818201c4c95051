"""`status` advice: the recommendation with its commands, watched on a simulated ksmd, and
what ksmtuned, oVirt MOM, KubeVirt and the kernel's advisor would set instead."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ksm_exporter.derive.tuning import TuningOptions
from ksm_exporter.sources.roots import Roots
from ksm_exporter.status.build import build_status
from ksm_exporter.status.render import render_json, render_text
from ksm_exporter.status.snapshot import Snapshot, take_snapshot
from tests.support.ksmd_simulator import KsmdSimulator, run_for, saturating, simulated_ksmd
from tests.support.sampling import CLOCK_TICKS, copy_fixture, run_tuners, write_ksm

pytestmark = pytest.mark.unit

PAGES = 20_000
KIB = 1024


def watched(
    tmp_path: Path, *, window: float = 30.0, budget: float = 0.05, advisor: bool = False
) -> tuple[Snapshot, KsmdSimulator, Roots]:
    """`status` watching a simulated ksmd (0.5 s a full scan) on the `current` fixture."""
    sim = simulated_ksmd(
        tmp_path, PAGES, saturating(PAGES, 0.99), pages_to_scan=1000, advisor=advisor
    )
    roots, clock = sim.roots, sim.clock

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
    document = json.loads(render_json(build_status(snapshot)))["advice"]
    recommended = document["recommended"]
    pages = recommended["pages_to_scan"]
    assert document["state"] == "backlog"
    assert recommended["commands"] == [f"echo {pages} > {roots.sysfs}/kernel/mm/ksm/pages_to_scan"]
    text = render_text(build_status(snapshot)).splitlines()
    start = text.index("Run as root:")
    assert text[start + 1] == f"  echo {pages} > {roots.sysfs}/kernel/mm/ksm/pages_to_scan"
    assert "Advice         backlog: saved memory still grows: as fast as the budget allows" in text
    # At 1,000 pages: floor(20,000/1,000) + 1 = 21 wake-ups, each 0.53 ms of work within the
    # first half of its jiffy, then 5 jiffies at HZ=250 and the timer wheel's one: 24 ms.
    seconds = 21 * 0.024
    share = (PAGES * 0.5e-6 + 21 * 30e-6) / seconds
    (now,) = [line for line in text if line.startswith("Now ")]
    figures = now.removeprefix("Now").replace(" s a full scan,", "").replace("% of a CPU", "")
    measured_seconds, measured_percent = (float(figure) for figure in figures.split())
    assert measured_seconds == pytest.approx(seconds, rel=0.01)
    assert measured_percent == pytest.approx(100 * share, rel=0.03)
    assert max(len(line) for line in text if str(tmp_path) not in line) <= 80

    sim.set(pages_to_scan=pages)  # as the operator would, then watch ksmd
    run_for(sim, lambda: None, 20.0, 1.0)
    predicted = document["predicted"]["recommended"]
    assert sim.full_scan_seconds(10) == pytest.approx(predicted["full_scan_seconds"], rel=0.05)
    # One setting seen: no cost per batch yet, so the CPU of a wake-up is counted per page,
    # overstated at a larger batch; still within 10%, and within the budget.
    assert sim.cpu_ratio(10) == pytest.approx(predicted["ksmd_cpu_ratio"], rel=0.10)
    assert sim.cpu_ratio(10) <= 0.05
    assert document["model"]["pages_to_scan_values_seen"] == 1


def test_where_the_kernel_advisor_runs_the_advice_caps_its_pages(tmp_path: Path) -> None:
    """pages_to_scan_store() returns EINVAL while the advisor runs, and scan_time_advisor()
    raises its pages to 10% of a CPU whatever advisor_max_cpu says: only
    advisor_max_pages_to_scan, applied last, binds."""
    snapshot, _sim, roots = watched(tmp_path, advisor=True, budget=0.05)
    document = json.loads(render_json(build_status(snapshot)))["advice"]
    pages = document["recommended"]["pages_to_scan"]
    ksm = f"{roots.sysfs}/kernel/mm/ksm"
    assert document["recommended"]["commands"] == [
        f"echo {pages} > {ksm}/advisor_max_pages_to_scan"
    ]
    text = render_text(build_status(snapshot))
    assert "only its page cap binds" in text


def test_short_window_says_how_many_more_scans_and_how_long_to_watch(tmp_path: Path) -> None:
    snapshot, _sim, _roots = watched(tmp_path, window=1.0)
    lines = render_text(build_status(snapshot)).splitlines()
    advice = lines[lines.index("Advice         unknown until 3 more full scans complete") :]
    assert advice[1] == f"{'':15}watch longer: --window 3"
    assert json.loads(render_json(build_status(snapshot)))["advice"]["full_scans_needed"] == 3


def test_only_the_kernel_advisor_is_modelled_where_no_other_tuner_runs(tmp_path: Path) -> None:
    snapshot, _sim, _roots = watched(tmp_path)
    status = build_status(snapshot)
    others = json.loads(render_json(status))["advice"]["others"]
    assert list(others) == ["kernel_advisor"]
    text = render_text(status)
    for name in ("ksmtuned", "oVirt MOM", "KubeVirt", "Kernel advisor"):
        assert name not in text  # the advisor is off in the fixture: not listed either
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


def write_status(roots: Roots, pid: int, vm_size_kib: int, vm_rss_kib: int) -> None:
    """`<pid>/status` as task_mem() writes its sizes, in kB."""
    directory = Path(roots.procfs) / str(pid)
    name = (directory / "comm").read_text().strip()
    (directory / "status").write_text(
        f"Name:\t{name}\nState:\tS (sleeping)\nVmSize:\t{vm_size_kib:8} kB\n"
        f"VmRSS:\t{vm_rss_kib:8} kB\n"
    )


def others_of(roots: Roots) -> tuple[dict[str, dict[str, object]], list[str]]:
    snapshot = take_snapshot(roots, 0.1, page_size=4096, sleep=lambda _s: None)
    others = json.loads(render_json(build_status(snapshot)))["advice"]["others"]
    return others, render_text(build_status(snapshot)).splitlines()


def test_a_running_ksmtuned_that_stops_ksm_is_shown_with_its_rule(tmp_path: Path) -> None:
    roots = copy_fixture("current", tmp_path / "tree")
    pids = run_tuners(roots, "ksmtuned")
    others, text = others_of(roots)
    assert list(others) == ["ksmtuned", "kernel_advisor"]
    # The fixture: 16,384,000 kB of RAM, 10,100,000 kB free (MemFree + Buffers + Cached), no
    # QEMU memory in sight: under 20% of RAM, ksmtuned stops KSM.
    reason = "QEMU's resident memory plus the threshold fits in RAM and free memory is above it"
    assert others["ksmtuned"] == {
        "pid": pids["ksmtuned"],
        "interval_seconds": 60,  # KSM_MONITOR_INTERVAL's default
        "run": 0,
        "pages_to_scan": None,
        "sleep_millisecs": None,
        "reason": reason,
        "unknown": [],
        "committed_bytes": 0,
        "threshold_bytes": 16_384_000 * 20 // 100 * KIB,
        "predicted": None,
    }
    shown = f"ksmtuned       runs here (pid {pids['ksmtuned']}): stops KSM (run=0): QEMU's"
    assert any(line.startswith(shown) for line in text), text


def test_each_other_tuner_counts_qemu_as_its_source_does(tmp_path: Path) -> None:
    roots = copy_fixture("current", tmp_path / "tree")
    run_tuners(roots, "ksmtuned", "momd", "virt-handler")
    # pid 1201 is libvirt's QEMU (/usr/bin/qemu-system-x86_64, no -enable-kvm): 14 GiB
    # virtual, 1 GiB resident. pid 1302 (comm kvm) holds as much, and neither counts it.
    write_status(roots, 1201, 14 << 20, 1 << 20)
    write_status(roots, 1302, 14 << 20, 14 << 20)
    others, text = others_of(roots)
    total, free = 16_384_000, 10_100_000
    # Debian's ksmtuned: `pgrep -f '^qemu-system.*-enable-kvm'` finds neither: it stops KSM.
    assert (others["ksmtuned"]["run"], others["ksmtuned"]["committed_bytes"]) == (0, 0)
    # MOM: `pgrep qemu` finds 1201 and its vsz is 14 GiB; 14 GiB + 20% of 16,384,000 kB is
    # over MemTotal: it starts KSM, decays the fixture's 1000 pages by 50, and sleeps
    # int(10 x 16777216 / MemTotal) ms.
    mom = others["mom"]
    assert mom["committed_bytes"] == (14 << 20) * KIB
    assert (14 << 20) + total * 0.20 >= total
    assert free > total * 0.20
    assert (mom["run"], mom["pages_to_scan"]) == (1, 1000 - 50)
    assert mom["sleep_millisecs"] == int(10 * 16777216 / total) == 10
    # KubeVirt: MemAvailable 12,000,000 kB is over 20%: no pressure; KSM runs: decay by 50;
    # the sleep is 100 ms x 16 GiB / (MemTotal - MemAvailable), integer.
    assert (mom["interval_seconds"], others["kubevirt"]["interval_seconds"]) == (10, 3 * 60)
    kubevirt = others["kubevirt"]
    assert (kubevirt["run"], kubevirt["pages_to_scan"]) == (1, 950)
    assert kubevirt["sleep_millisecs"] == 100 * 16777216 // (total - 12_000_000) == 382
    for shown in (
        "ksmtuned       runs here (pid 4342): stops KSM (run=0): QEMU's resident memory",
        "oVirt MOM      runs here (pid 4343): sets pages_to_scan=950, sleep_millisecs=10:",
        "KubeVirt       runs here (pid 4344): sets pages_to_scan=950,",
    ):
        assert any(line.startswith(shown) for line in text), (shown, text)


def test_a_rule_whose_input_cannot_be_read_says_so(tmp_path: Path) -> None:
    roots = copy_fixture("current", tmp_path / "tree")
    run_tuners(roots, "ksmtuned", "momd", "virt-handler")
    # A kernel before 3.14: no MemAvailable. KubeVirt's handler then does nothing at all.
    (Path(roots.procfs) / "meminfo").write_text(
        "MemTotal: 16384000 kB\nMemFree: 1000000 kB\nBuffers: 0 kB\nCached: 1000000 kB\n"
    )
    others, text = others_of(roots)
    assert others["kubevirt"]["unknown"] == ["MemAvailable"]
    assert (others["kubevirt"]["run"], others["kubevirt"]["pages_to_scan"]) == (None, None)
    assert "KubeVirt       runs here (pid 4344): unknown: MemAvailable" in text
    # Free memory under the threshold: ksmtuned, running, boosts from the 1000 pages it last
    # wrote, MOM from the kernel's 1000; both capped at 1250, 10 ms on this host.
    assert others["ksmtuned"]["pages_to_scan"] == 1250
    assert (others["mom"]["pages_to_scan"], others["mom"]["sleep_millisecs"]) == (1250, 10)


def test_a_running_ksmtuned_steps_from_the_pages_it_wrote(tmp_path: Path) -> None:
    roots = copy_fixture("current", tmp_path / "tree")
    (Path(roots.procfs) / "meminfo").write_text(
        "MemTotal: 4194304 kB\nMemFree: 100000 kB\nBuffers: 0 kB\nCached: 0 kB\n"
    )
    rival = Path(roots.procfs) / "4242"
    rival.mkdir()
    (rival / "comm").write_text("ksmtuned\n")
    write_ksm(roots, "pages_to_scan", 600)
    others, _text = others_of(roots)
    # A 4 GiB host: the sleep scales by 16 GiB / MemTotal: 40 ms.
    assert (others["ksmtuned"]["pages_to_scan"], others["ksmtuned"]["sleep_millisecs"]) == (
        600 + 300,
        10 * 16 * 1024 * 1024 // 4194304,
    )

"""`ksm-exporter status`: a snapshot for people (80 columns) and for scripts (--json)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from harness.paths import FIXTURES, fixture_roots
from ksm_exporter.sources.kernel_file import Problem
from ksm_exporter.sources.roots import Roots
from ksm_exporter.status.build import build_status
from ksm_exporter.status.render import render_json, render_text
from ksm_exporter.status.snapshot import KsmUnreadable, Snapshot, no_ksm_sentence, take_snapshot
from tests.support.sampling import (
    CLOCK_TICKS,
    KSMD_PID,
    ManualClock,
    copy_fixture,
    write_full_scans,
    write_stat,
)
from tests.test_cli import run_cli

PAGE_SIZE = 4096
CURRENT = FIXTURES / "current"
PATHS = ("--path.sysfs", str(CURRENT / "sys"), "--path.procfs", str(CURRENT / "proc"))


def busy_ksmd_snapshot(tmp_path: Path, scans_at: tuple[int, ...]) -> Snapshot:
    """The `current` fixture watched for 1 s while ksmd uses 30% of a CPU (3 ticks per
    0.1 s step) and full_scans grows at the given steps."""
    roots = copy_fixture("current", tmp_path)
    clock = ManualClock()
    steps = 0
    full_scans = 42

    def sleep(seconds: float) -> None:
        nonlocal steps, full_scans
        clock.now += seconds
        steps += 1
        full_scans += scans_at.count(steps)
        write_full_scans(roots, full_scans)
        write_stat(roots, KSMD_PID, utime=25, stime=1210 + 3 * steps)

    write_stat(roots, KSMD_PID, utime=25, stime=1210)
    return take_snapshot(
        roots, 1.0, 3, clock=clock, sleep=sleep, page_size=PAGE_SIZE, clock_ticks=CLOCK_TICKS
    )


@pytest.mark.unit
def test_text_has_state_savings_cost_and_top_processes(tmp_path: Path) -> None:
    text = render_text(build_status(busy_ksmd_snapshot(tmp_path, scans_at=(2, 7))))
    lines = text.splitlines()
    for expected in [
        "KSM            running (run=1)",
        "Scanning       pages_to_scan 1000, sleep 20 ms",
        "Advisor        scan-time: max CPU 70%, target scan 200 s, pages 500-30000",
        "Options        zero pages on, smart scan on, cross-NUMA on, max sharing 256",
        "Memory saved   118.2 MiB (0.74% of 15.6 GiB RAM)",
        "Net profit     112.5 MiB after metadata (general_profit)",
        "Pages          shared 1200, sharing 30000, unshared 4500, volatile 37, zero 250",
        "Sharing        26.00 mappings per shared page",
        "Unshared       0.15 unshared pages per sharing page (wasted effort)",
        "ksmd CPU       30.0% of one CPU over 1.0 s (pid 37, 12.65 s CPU in all)",
        "Full scan      0.50 s, 150.0 ms of ksmd CPU each",
        "Full scans     44 since KSM started or was reset",
        "Processes      8 registered with KSM, 6 merging",
        "   1201 qemu-system-x86   468.8 MiB   456.8 MiB  vm web01",
        "   1302 kvm               195.3 MiB   187.3 MiB  vm db02",
        "   2200 nginx               3.1 MiB     3.1 MiB  ...ce/cri-containerd-4d2a.scope",
    ]:
        assert expected in lines
    top = lines[lines.index("Top processes by merging pages") + 2 :]
    assert top.index("") == 3  # --top 3
    problems = lines[lines.index("Problem        not an unsigned integer:") :]
    assert problems == [
        "Problem        not an unsigned integer:",
        f"{'':15}{tmp_path}/current/proc/2100/ksm_stat",
        "Problem        EISDIR: Is a directory:",
        f"{'':15}{tmp_path}/current/proc/2101/ksm_stat",
    ]
    assert max(len(line) for line in lines if str(tmp_path) not in line) <= 80


@pytest.mark.unit
def test_full_scan_time_unknown_when_fewer_than_two_complete(tmp_path: Path) -> None:
    one = render_text(build_status(busy_ksmd_snapshot(tmp_path / "one", scans_at=(4,))))
    # The CPU per scan needs one completion only: the window's CPU divided by the scans in it.
    assert "Full scan      1 completed in 1.0 s, 300.0 ms CPU each; timing needs two" in one
    none = render_text(build_status(busy_ksmd_snapshot(tmp_path / "none", scans_at=())))
    assert "Full scan      unknown: none completed in 1.0 s (watch longer: --window)" in none


@pytest.mark.unit
def test_several_scans_in_one_step_are_averaged(tmp_path: Path) -> None:
    document = json.loads(
        render_json(build_status(busy_ksmd_snapshot(tmp_path, scans_at=(1, 3, 3, 3))))
    )
    assert document["full_scan"]["completed_in_window"] == 4
    assert document["full_scan"]["duration_seconds"] == pytest.approx(0.2 / 3)
    assert document["full_scan"]["ksmd_cpu_seconds"] == pytest.approx(0.3 / 4)  # the window's


@pytest.mark.unit
def test_json_holds_the_same_figures(tmp_path: Path) -> None:
    document = json.loads(render_json(build_status(busy_ksmd_snapshot(tmp_path, scans_at=(2, 7)))))
    assert document["ksm"]["run"] == 1
    assert document["ksm"]["advisor_mode"] == {
        "active": "scan-time",
        "modes": ["none", "scan-time"],
    }
    assert document["memory"]["saved_bytes"] == 30250 * PAGE_SIZE
    assert document["memory"]["mem_total_bytes"] == 16384000 * 1024
    assert document["ksmd"] == {
        "pid": 37,
        "cpu_seconds_total": 12.65,
        "cpu_ratio": pytest.approx(0.3),
        "window_seconds": pytest.approx(1.0),
    }
    assert document["full_scan"] == {
        "completed_in_window": 2,
        "duration_seconds": pytest.approx(0.5),
        "ksmd_cpu_seconds": 0.15,
    }
    first = document["processes"]["top"][0]
    assert (first["pid"], first["comm"], first["vm"], first["merging_pages"]) == (
        1201,
        "qemu-system-x86",
        "web01",
        120000,
    )
    assert [p["pid"] for p in document["processes"]["top"]] == [1201, 1302, 2200]
    assert {p["path"].rsplit("/", 2)[-2] for p in document["problems"]} == {"2100", "2101"}


@pytest.mark.unit
def test_without_ksmd_cpu_is_unknown(tmp_path: Path) -> None:
    roots = copy_fixture("current", tmp_path)
    (Path(roots.procfs) / str(KSMD_PID) / "stat").unlink()
    text = render_text(build_status(take_snapshot(roots, 0.1, page_size=PAGE_SIZE)))
    assert "ksmd CPU       unknown: no ksmd under --path.procfs (use the host's /proc)" in text


@pytest.mark.unit
def test_a_procfs_mounted_with_hidepid_is_a_problem(tmp_path: Path) -> None:
    """A mountinfo naming hidepid=invisible on the procfs root (proc_show_options() in
    fs/proc/root.c writes it among the super options): text and --json list it."""
    roots = copy_fixture("current", tmp_path)
    root = os.path.realpath(roots.procfs)
    (Path(roots.procfs) / "self").mkdir(exist_ok=True)
    (Path(roots.procfs) / "self" / "mountinfo").write_text(
        "23 1 0:22 / /proc rw,nosuid - proc proc rw\n"
        f"90 1 0:50 / {root} rw,relatime - proc proc rw,gid=4242,hidepid=invisible\n"
    )
    snapshot = take_snapshot(roots, 0.1, page_size=PAGE_SIZE)
    assert "is mounted with hidepid=invisible: other users' processes are hidden" in (
        " ".join(render_text(build_status(snapshot)).split())
    )
    document = json.loads(render_json(build_status(snapshot)))
    assert {p["value"] for p in document["problems"]} >= {"hidepid=invisible"}


@pytest.mark.unit
def test_old_kernel_shows_what_it_has() -> None:
    text = render_text(
        build_status(take_snapshot(fixture_roots("old-kernel"), 0.1, page_size=PAGE_SIZE))
    )
    assert "Memory saved   0.2 MiB" in text
    assert "Advisor" not in text
    assert "Processes      1 registered with KSM, 1 merging" in text
    assert "    100 qemu-kvm            2.7 MiB           -  vm legacyvm" in text  # no profit


# --- the command ---------------------------------------------------------------------------


@pytest.mark.e2e
def test_status_command_prints_the_snapshot() -> None:
    result = run_cli("status", "--window", "0.1", *PATHS)
    assert (result.returncode, result.stderr) == (0, "")
    saved = 30250 * os.sysconf("SC_PAGE_SIZE") / (1 << 20)
    assert f"Memory saved   {saved:,.1f} MiB (" in result.stdout
    assert "   1201 qemu-system-x86" in result.stdout


@pytest.mark.e2e
def test_status_json_parses() -> None:
    result = run_cli("status", "--json", "--window", "0.1", "--top", "1", *PATHS)
    assert result.returncode == 0
    document = json.loads(result.stdout)
    assert document["ksm"]["pages_sharing"] == 30000
    assert document["ksmd"]["pid"] == 37
    assert document["ksmd"]["cpu_seconds_total"] == 12.351234567  # schedstat
    assert document["ksmd"]["cpu_ratio"] == 0.0
    assert [p["vm"] for p in document["processes"]["top"]] == ["web01"]


@pytest.mark.e2e
def test_status_reads_the_paths_from_the_environment() -> None:
    env = {"KSM_EXPORTER_PATH_SYSFS": str(CURRENT / "sys"), "KSM_EXPORTER_PATH_PROCFS": "/nope"}
    result = run_cli("status", "--json", "--window", "0.1", env=env)
    assert result.returncode == 0
    document = json.loads(result.stdout)
    assert document["ksm"]["pages_sharing"] == 30000
    assert document["ksmd"]["pid"] is None


@pytest.mark.e2e
def test_no_ksm_is_one_sentence_and_exit_1(tmp_path: Path) -> None:
    result = run_cli("status", "--path.sysfs", str(tmp_path), "--path.procfs", str(tmp_path))
    assert result.returncode == 1
    assert result.stdout == ""
    directory = tmp_path / "kernel" / "mm" / "ksm"
    assert result.stderr == (
        f"ksm-exporter status: this kernel has no KSM: {directory} does not exist.\n"
    )


@pytest.mark.e2e
@pytest.mark.parametrize(("flag", "value"), [("--window", "0"), ("--top", "-1")])
def test_bad_status_flag_is_one_line_and_exit_2(flag: str, value: str) -> None:
    result = run_cli("status", flag, value, *PATHS)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert flag in result.stderr


@pytest.mark.unit
def test_no_ksm_raises_before_watching(tmp_path: Path) -> None:
    def sleep(_seconds: float) -> None:
        raise AssertionError("watched ksmd without KSM")

    with pytest.raises(KsmUnreadable, match=r"^this kernel has no KSM: .* does not exist\.$"):
        take_snapshot(Roots(str(tmp_path), str(tmp_path)), 1.0, sleep=sleep)


@pytest.mark.unit
def test_unreadable_ksm_directory_names_the_reason() -> None:
    problem = Problem("/sys/kernel/mm/ksm", "", "not readable")
    assert no_ksm_sentence("/sys", (problem,)) == "cannot read /sys/kernel/mm/ksm: not readable."

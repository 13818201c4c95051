"""`ksm-exporter tune` as a real process: how it starts, refuses, changes settings and ends.

The fixture tree stands in for the kernel's files; ksmd's CPU time in it is advanced by the
test, as the kernel's schedstat would be, so the tuner measures a real share of a CPU.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.eventually import eventually
from harness.exporter_process import Child
from ksm_exporter.sources.roots import Roots
from tests.support.sampling import KSMD_PID, copy_fixture, write_ksm
from tests.support.unprivileged import NobodyRuntime, directory_for_nobody, readable_by_all

pytestmark = pytest.mark.e2e

INTERVAL = "0.2"
START_TIMEOUT = 15.0
# The tuner decides after DECIDE_SECONDS (5 s) at one setting; room for a slow machine.
DECISION_TIMEOUT = 20.0
KSMD_SHARE = 0.5  # of one CPU: five times the default 10% budget
CHANGED = re.compile(r'msg=changed setting=(\S+) from=(\d+) to=(\d+) reason="([^"]+)"')


def ksm_files(roots: Roots) -> dict[str, tuple[bytes, int]]:
    """Every file of the KSM directory: its bytes and its modification time."""
    directory = Path(roots.sysfs) / "kernel" / "mm" / "ksm"
    return {file.name: (file.read_bytes(), file.stat().st_mtime_ns) for file in directory.iterdir()}


def tune_argv(
    roots: Roots, *flags: str, python: str = sys.executable, state_dir: Path | None = None
) -> list[str]:
    """The tuner's command line; its state file beside the fixture tree (or in
    `state_dir`), never the host's /var/lib."""
    state = (state_dir or Path(roots.sysfs).parent) / "tune.json"
    return [
        python,
        "-m",
        "ksm_exporter",
        "tune",
        f"--path.sysfs={roots.sysfs}",
        f"--path.procfs={roots.procfs}",
        f"--interval={INTERVAL}",
        f"--tuning.state-file={state}",
        *flags,
    ]


def refusal(roots: Roots, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        tune_argv(roots, *flags), capture_output=True, text=True, timeout=30, check=False
    )


def assert_one_line(result: subprocess.CompletedProcess[str], *words: str) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1, result
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0]
    return lines[0]


@pytest.fixture
def roots(tmp_path: Path) -> Roots:
    """The `current` fixture with the scan-time advisor off, as a host the tuner may tune."""
    roots = copy_fixture("current", tmp_path)
    (Path(roots.sysfs) / "kernel" / "mm" / "ksm" / "advisor_mode").write_text("[none] scan-time\n")
    return roots


@pytest.fixture
def busy_ksmd(roots: Roots) -> Iterator[None]:
    """ksmd's schedstat advancing at KSMD_SHARE of a CPU in real time."""
    stop = threading.Event()
    start = time.monotonic()

    schedstat = Path(roots.procfs) / str(KSMD_PID) / "schedstat"
    staged = schedstat.with_name("schedstat.new")

    def advance() -> None:
        # Replaced whole, as the kernel's file is read whole: never seen half written.
        while not stop.wait(0.05):
            cpu_ns = int((time.monotonic() - start) * KSMD_SHARE * 1e9)
            staged.write_text(f"{cpu_ns} 81234 17\n")
            staged.replace(schedstat)

    thread = threading.Thread(target=advance, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def logged(child: Child, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
    """The first line of the child's log matching `pattern`, once it is there."""

    def search() -> re.Match[str] | None:
        child.running()  # raises once it has exited: no use waiting longer
        return pattern.search(child.output())

    try:
        return eventually(search, timeout, what=pattern.pattern)
    except AssertionError as err:
        raise AssertionError(f"{err}; its log:\n{child.output()}") from err


def started(child: Child) -> None:
    logged(child, re.compile('msg="tuning KSM"'), START_TIMEOUT)


def stopped_by_sigterm(child: Child) -> float:
    """Seconds from SIGTERM to its exit."""
    sent = time.monotonic()
    child.process.send_signal(signal.SIGTERM)
    child.process.wait(timeout=10)
    return time.monotonic() - sent


@pytest.mark.usefixtures("busy_ksmd")
def test_it_lowers_pages_to_scan_over_the_budget_logs_why_and_ends_on_sigterm(
    roots: Roots,
) -> None:
    child = Child(tune_argv(roots))
    try:
        started(child)
        change = logged(child, CHANGED, DECISION_TIMEOUT)
        setting, before, after, reason = change.groups()
        # The fixture's 1000 pages at 50% of a CPU: the 10% budget allows a fifth of them.
        assert (setting, int(before)) == ("pages_to_scan", 1000)
        assert int(after) < int(before)
        assert "budget" in reason
        assert (Path(roots.sysfs) / "kernel/mm/ksm/pages_to_scan").read_text().strip() == after
        written = ksm_files(roots)
        assert stopped_by_sigterm(child) < 1.0
        assert child.process.returncode == 0, child.output()
        assert ksm_files(roots) == written  # the settings stay as they were at the stop
        log = child.stop()
    finally:
        child.stop()
    every_change = CHANGED.findall(log)
    assert every_change
    assert all(reason for *_, reason in every_change)
    assert "stopped; the settings stay as they are" in log


@pytest.mark.usefixtures("busy_ksmd")
@pytest.mark.parametrize(
    "advisor_mode", ["[none] scan-time", "none [scan-time]"], ids=["alone", "beside_the_advisor"]
)
def test_dry_run_logs_the_change_and_writes_nothing(roots: Roots, advisor_mode: str) -> None:
    """Beside the kernel's scan-time advisor too, where it says what it would set instead."""
    (Path(roots.sysfs) / "kernel/mm/ksm/advisor_mode").write_text(advisor_mode + "\n")
    before = ksm_files(roots)
    child = Child(tune_argv(roots, "--dry-run"))
    try:
        started(child)
        logged(child, re.compile('msg="would change" setting=pages_to_scan'), DECISION_TIMEOUT)
        assert stopped_by_sigterm(child) < 1.0
        assert child.process.returncode == 0
        log = child.stop()
    finally:
        child.stop()
    assert ksm_files(roots) == before
    assert not (Path(roots.sysfs).parent / "tune.json").exists()  # a dry run keeps no state
    beside = "the kernel's scan-time advisor tunes pages_to_scan" in log
    assert beside == ("[scan-time]" in advisor_mode)


def test_an_external_write_ends_it_with_status_3(roots: Roots) -> None:
    child = Child(tune_argv(roots))
    try:
        started(child)
        values = iter(range(500, 600))

        def overridden() -> bool:
            if child.process.poll() is not None:
                return True
            # Each attempt writes a new value: one lands after the tuner's first reading.
            write_ksm(roots, "pages_to_scan", next(values))
            return False

        eventually(overridden, START_TIMEOUT, interval=0.2, what="the tuner noticing the write")
        log = child.stop()
    finally:
        child.stop()
    assert child.process.returncode == 3, log
    assert "someone else changed KSM's settings" in log
    # From the fixture's 1000, or from a value written before the tuner's first reading,
    # which the tuner took as the setting it found.
    changed = re.search(r"pages_to_scan changed from (\d+) to (\d+), not by this tuner", log)
    assert changed is not None, log
    assert int(changed[1]) in (1000, *range(500, 600))
    assert 500 <= int(changed[2]) < 600


def test_the_scan_time_advisor_without_take_over_is_refused(tmp_path: Path) -> None:
    roots = copy_fixture("current", tmp_path)  # advisor_mode "none [scan-time]"
    before = ksm_files(roots)
    assert_one_line(refusal(roots), "--take-over", "scan-time")
    assert ksm_files(roots) == before


def test_a_running_ksmtuned_is_refused(roots: Roots) -> None:
    ksmtuned = Path(roots.procfs) / "4242"
    ksmtuned.mkdir()
    (ksmtuned / "comm").write_text("ksmtuned\n")
    before = ksm_files(roots)
    assert_one_line(refusal(roots), "ksmtuned", "4242")
    assert ksm_files(roots) == before


def test_a_kernel_without_ksm_is_refused(tmp_path: Path) -> None:
    (tmp_path / "sys").mkdir()
    (tmp_path / "proc").mkdir()
    roots = Roots(str(tmp_path / "sys"), str(tmp_path / "proc"))
    assert_one_line(refusal(roots), "no KSM")
    assert list((tmp_path / "sys").iterdir()) == []


def test_settings_it_cannot_write_are_refused(nobody: NobodyRuntime) -> None:
    """As `nobody`, against root's files: as on a read-only /sys or for a user not root."""
    with directory_for_nobody("ksm-exporter-tune-") as root:
        roots = copy_fixture("current", root)
        (Path(roots.sysfs) / "kernel/mm/ksm/advisor_mode").write_text("[none] scan-time\n")
        readable_by_all(root)
        before = ksm_files(roots)
        result = nobody.run(*tune_argv(roots, python="")[1:])
        assert_one_line(result, "cannot write", "not root")
        assert ksm_files(roots) == before

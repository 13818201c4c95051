"""`ksm-exporter tune` on this host's real KSM: it raises the pace in bounded steps, merges a
real workload, and leaves the settings as they were at its stop."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.eventually import eventually
from harness.exporter_process import Child
from harness.real_ksm import ksm_control, merging_child
from ksm_exporter.sources.roots import Roots
from tests.test_tune_command import CHANGED, started, stopped_by_sigterm, tune_argv

REAL_SETTINGS = ("run", "pages_to_scan", "sleep_millisecs", "advisor_mode")
HOST = Roots("/sys", "/proc")
REAL_STEPS = 3  # changes to see on real KSM
REAL_TIMEOUT = 45.0


def real_settings() -> dict[str, str]:
    directory = Path(HOST.sysfs) / "kernel" / "mm" / "ksm"
    return {
        name: (directory / name).read_text().strip()
        for name in REAL_SETTINGS
        if (directory / name).exists()
    }


@pytest.mark.realksm
def test_on_real_ksm_it_raises_the_pace_in_bounded_steps_and_leaves_it_at_the_stop(
    tmp_path: Path,
) -> None:
    with ksm_control() as control:
        advisor = Path(HOST.sysfs) / "kernel" / "mm" / "ksm" / "advisor_mode"
        advisor_before = advisor.read_text() if advisor.exists() else None
        try:
            if advisor_before is not None:
                advisor.write_text("none")
            control.set(pages_to_scan=100, sleep_millisecs=20, run=1)
            # The budget sets the pace: a steady scan as short as it allows.
            child = Child(
                tune_argv(
                    HOST,
                    "--tuning.steady-full-scan-seconds=0.1",
                    # Other processes' memory registered on a test machine costs ksmd too.
                    "--tuning.cpu-budget=0.5",
                    state_dir=tmp_path,
                )
            )
            try:
                started(child)
                # Memory registered once the tuner is watching: new memory to scan.
                with merging_child(32 << 20) as workload:
                    eventually(
                        lambda: (
                            child.running() and len(CHANGED.findall(child.output())) >= REAL_STEPS
                        ),
                        REAL_TIMEOUT,
                        what=f"{REAL_STEPS} changes",
                    )
                    assert workload.wait_merged(1, 120) > 0
                    at_stop = real_settings()
                    assert stopped_by_sigterm(child) < 1.0
                    assert child.process.returncode == 0
                    assert real_settings() == at_stop
                log = child.stop()
            finally:
                child.stop()
        finally:
            if advisor_before is not None:
                advisor.write_text(advisor_before.split("[")[1].split("]")[0])
    changes = [(s, int(a), int(b), r) for s, a, b, r in CHANGED.findall(log)]
    assert changes[0][:2] == ("pages_to_scan", 100)
    assert changes[0][2] > 100
    for setting, before, after, _ in changes:
        assert setting == "pages_to_scan"
        assert after <= 2 * before, changes
    assert at_stop["pages_to_scan"] == str(changes[-1][2])

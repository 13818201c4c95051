"""deploy/systemd/ksm-exporter.service: valid for systemd, hardened, and still able to read;
ksm-exporter-tune.service: as hardened, writing /sys/kernel/mm/ksm and nothing else."""

from __future__ import annotations

import ctypes
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from harness.exporter_process import running_exporter
from harness.exposition import parse_samples, value
from harness.paths import REPO
from harness.tools import require
from ksm_exporter.config import Settings
from ksm_exporter.tune.tuner import EXIT_OVERRIDDEN

UNIT = REPO / "deploy" / "systemd" / "ksm-exporter.service"
TUNE_UNIT = REPO / "deploy" / "systemd" / "ksm-exporter-tune.service"
PR_SET_MDWE, PR_GET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 66, 1


def settings(text: str) -> list[tuple[str, str]]:
    return [
        (key, val)
        for key, _, val in (line.partition("=") for line in text.splitlines())
        if key and not key.startswith(("#", "["))
    ]


def installed_copy(tmp_path: Path, text: str | None = None, source: Path = UNIT) -> Path:
    """The unit with ExecStart pointing at this checkout's exporter, which verify wants to see."""
    executable = Path(sys.executable).parent / "ksm-exporter"
    unit = tmp_path / source.name
    unit.write_text(
        (text or source.read_text()).replace(
            "ExecStart=/usr/local/bin/ksm-exporter", f"ExecStart={executable}"
        )
    )
    return unit


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    command = require("systemd-analyze", "systemd")
    return subprocess.run(
        [command, *args], capture_output=True, text=True, timeout=60, check=False, cwd="/"
    )


@pytest.mark.e2e
def test_systemd_analyze_verify_is_silent(tmp_path: Path) -> None:
    result = analyze("verify", str(installed_copy(tmp_path)))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


@pytest.mark.e2e
def test_verify_reports_what_systemd_would_ignore(tmp_path: Path) -> None:
    """verify exits 0 on unknown keys and bad values; its output is what tells."""
    broken = UNIT.read_text().replace("ProtectSystem=strict", "ProtectSystem=strictly")
    result = analyze("verify", str(installed_copy(tmp_path, broken)))
    assert "Failed to parse protect system value, ignoring: strictly" in result.stderr


def exposure(unit: Path) -> float:
    result = analyze("security", "--offline=true", str(unit))
    score = re.search(rf"Overall exposure level for {unit.name}: (\d+\.\d+)", result.stdout)
    assert score, result.stdout + result.stderr
    return float(score.group(1))


@pytest.mark.e2e
def test_exposure_score_is_low(tmp_path: Path) -> None:
    assert exposure(installed_copy(tmp_path)) <= 2.0


@pytest.mark.e2e
def test_the_tuner_unit_verifies_silently_and_its_exposure_is_low(tmp_path: Path) -> None:
    unit = installed_copy(tmp_path, source=TUNE_UNIT)
    result = analyze("verify", str(unit))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    # Root, where the exporter runs as a made-up user, but with every other door shut.
    assert exposure(unit) <= 1.5


@pytest.mark.unit
def test_the_tuner_writes_ksm_settings_only_and_is_not_restarted_over_an_operator() -> None:
    unit = settings(TUNE_UNIT.read_text())
    keys = {key for key, _ in unit}
    # /sys read-only but KSM's directory; root's files written as their owner, no capability
    # to override permissions; the one kept reads other users' ksm_stat.
    assert ("ProtectKernelTunables", "yes") in unit
    assert ("ProtectSystem", "strict") in unit
    assert [val for key, val in unit if key == "ReadWritePaths"] == ["/sys/kernel/mm/ksm"]
    assert ("CapabilityBoundingSet", "CAP_DAC_READ_SEARCH") in unit
    assert ("NoNewPrivileges", "yes") in unit
    assert {"ProtectHome", "PrivateTmp", "SystemCallFilter", "MemoryDenyWriteExecute"} <= keys
    assert ("ExecStart", "/usr/local/bin/ksm-exporter tune") in unit
    # Its state file at --tuning.state-file's default, in the one directory it may write
    # besides KSM's, readable by the exporter's user.
    default = Path(Settings.model_fields["tuning_state_file"].get_default())
    assert ("StateDirectory", default.parent.name) in unit
    assert default.parent.parent == Path("/var/lib")
    assert ("StateDirectoryMode", "0755") in unit
    # Someone else wrote a setting: never fight the operator's write.
    assert ("RestartPreventExitStatus", str(EXIT_OVERRIDDEN)) in unit


@pytest.mark.unit
def test_no_root_one_capability_and_nothing_that_hides_proc() -> None:
    unit = settings(UNIT.read_text())
    assert ("DynamicUser", "yes") in unit
    assert ("NoNewPrivileges", "yes") in unit
    capabilities = {key: val for key, val in unit if "Capabilit" in key}
    assert capabilities == {
        "AmbientCapabilities": "CAP_DAC_READ_SEARCH",
        "CapabilityBoundingSet": "CAP_DAC_READ_SEARCH",
    }
    keys = {key for key, _ in unit}
    assert {"ProtectSystem", "ProtectHome", "PrivateTmp", "RestrictAddressFamilies"} <= keys
    assert {"SystemCallFilter", "ProtectKernelTunables", "MemoryDenyWriteExecute"} <= keys
    # Each of these would hide processes, /proc/meminfo, or void the capability.
    assert not {"ProtectProc", "ProcSubset", "PrivateUsers", "User"} & keys


@pytest.mark.e2e
def test_serves_under_memory_deny_write_execute() -> None:
    """MemoryDenyWriteExecute=yes: no writable and executable memory, which the kernel's
    PR_SET_MDWE enforces here for the exporter and everything it loads."""
    if ctypes.CDLL(None).prctl(PR_GET_MDWE, 0, 0, 0, 0) < 0:
        pytest.skip("kernel without PR_SET_MDWE (needs Linux 6.3)")
    # Turns the protection on, proves it holds, then becomes the exporter (it is inherited).
    mdwe = (
        "import ctypes, mmap, os, sys\n"
        f"assert ctypes.CDLL(None).prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) == 0\n"
        "try:\n"
        "    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n"
        "    raise SystemExit('writable and executable memory still allowed')\n"
        "except PermissionError:\n"
        "    os.execv(sys.executable, [sys.executable, *sys.argv[1:]])\n"
    )
    with running_exporter(command=(sys.executable, "-c", mdwe)) as exporter:
        samples = parse_samples(exporter.get())
        assert value(samples, "ksm_available") == os.path.isdir("/sys/kernel/mm/ksm")

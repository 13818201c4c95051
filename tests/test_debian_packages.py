"""One list of the Debian packages the tests drive (.ci/debian-packages), which `make test`
and .ci/run install from, and the one line at the end of a run that counts skips by the
program that was missing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.paths import REPO
from harness.tools import require, skip_summary

SCRIPT = REPO / ".ci" / "debian-packages"
# The packages a skip message names: require("program", "package") and the lab's
# "... is missing: apt-get install package".
NAMED = (
    re.compile(r"""require\(\s*"[^"]+",\s*"([\w.+-]+)"\s*\)"""),
    re.compile(r"is missing: apt-get install ([\w.+-]+)"),
)


def listed() -> list[str]:
    """The PACKAGES array of the script, one package a line, comments after them."""
    body = SCRIPT.read_text().split("PACKAGES=(\n", 1)[1].split("\n)\n", 1)[0]
    return [line.split("#")[0].strip() for line in body.splitlines() if line.split("#")[0].strip()]


def skip_message(program: str, package: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """What a test skips with where `program` is missing (outside CI, where it fails)."""
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as skipped:
        require(program, package)
    return str(skipped.value.msg)


def with_candidates(apt_cache: str, packages: list[str]) -> list[str]:
    """The packages apt could install here, in their order: those `apt-cache policy` gives
    a candidate version for (its answer opens a block "<package>:" for each one it knows,
    and says "Candidate: (none)" where no source has one)."""
    answer = subprocess.run(
        [apt_cache, "policy", *packages], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    found, package = set(), ""
    for line in answer.splitlines():
        if not line.startswith(" ") and line.endswith(":"):
            package = line.removesuffix(":")
        elif line.startswith("  Candidate: ") and line != "  Candidate: (none)":
            found.add(package)
    return [package for package in packages if package in found]


def fresh_machine(bin_dir: Path, calls: Path) -> None:
    """Programs that make this machine look fresh to the script: a dpkg-query that knows no
    installed package, an apt-get that records each call (and, when asked to install, what
    the policy-rc.d in place answers) and installs nothing, and, for a test not run as root,
    an id that says root. apt-cache stays the machine's own."""
    bin_dir.mkdir()
    fakes = {
        "dpkg-query": 'echo "dpkg-query: no packages found matching $*" >&2\nexit 1',
        "apt-get": (
            f'echo "$*" >>"{calls}"\n'
            'if [ "$1" = install ]; then\n'
            '  "$POLICY_RC_D" >/dev/null 2>&1\n'
            f'  echo "policy-rc.d answers $?" >>"{calls}"\n'
            "fi"
        ),
    }
    if os.geteuid() != 0:
        fakes["id"] = "echo 0"
    for name, body in fakes.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)


@pytest.mark.e2e
def test_a_fresh_machine_installs_every_package_apt_has(tmp_path: Path) -> None:
    apt_cache = shutil.which("apt-cache")
    if apt_cache is None:
        pytest.skip("apt-cache is missing: not a Debian or Ubuntu machine")
    packages = listed()
    expected = with_candidates(apt_cache, packages)
    if not expected:
        pytest.skip("apt-cache has no candidate for any listed package: run apt-get update")
    calls, policy_rc_d = tmp_path / "apt-get-calls", tmp_path / "policy-rc.d"
    fresh_machine(tmp_path / "bin", calls)
    env = {
        **os.environ,
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "POLICY_RC_D": str(policy_rc_d),
    }
    result = subprocess.run(
        [str(SCRIPT)], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    update, install, policy_answer = calls.read_text().splitlines()
    assert update.split()[0] == "update"
    options = ["install", "-y", "-qq", "-o", "DPkg::Lock::Timeout=600", "--no-install-recommends"]
    assert install.split() == options + expected, result.stderr
    # No service of the packages starts while they install, and the policy goes after.
    assert policy_answer == "policy-rc.d answers 101"
    assert not policy_rc_d.exists()


@pytest.mark.unit
def test_every_package_a_skip_names_is_in_the_list() -> None:
    sources = [
        path
        for folder in ("tests", "lab", "bench")
        if (REPO / folder).is_dir()
        for path in (REPO / folder).rglob("*.py")
        if path.resolve() != Path(__file__).resolve()
    ]
    named = {
        package
        for path in sources
        for pattern in NAMED
        for package in pattern.findall(path.read_text())
    }
    assert {"prometheus", "qemu-system-x86", "busybox-static"} <= named  # the patterns work
    assert sorted(named - set(listed())) == []


@pytest.mark.unit
def test_the_list_has_the_peers_of_the_whole_suite() -> None:
    packages = listed()
    assert len(packages) == len(set(packages))
    for peer in (
        "prometheus",
        "prometheus-alertmanager",
        "prometheus-node-exporter",
        "wrk",
        "chromium",
        "ksmtuned",
        "qemu-system-x86",
        "python3-venv",
        "make",
    ):
        assert peer in packages


@pytest.mark.unit
def test_the_readme_shows_the_list() -> None:
    line = "apt-get install --no-install-recommends " + " ".join(listed())
    assert line in " ".join((REPO / "README.md").read_text().split())


@pytest.mark.unit
def test_the_summary_counts_skips_by_missing_program(monkeypatch: pytest.MonkeyPatch) -> None:
    reasons = [
        skip_message("no-such-prometheus", "prometheus", monkeypatch),
        skip_message("no-such-prometheus", "prometheus", monkeypatch),
        skip_message("no-such-jsonnet", "jsonnet", monkeypatch),
        "6.1: /usr/bin/no-such-qemu is missing: apt-get install qemu-system-x86",
        "/sys/kernel/mm/ksm does not exist: the kernel has no KSM",
    ]
    assert skip_summary(reasons) == (
        "skipped: 5 tests: 2 for no-such-prometheus, 1 for no-such-jsonnet, 1 for no-such-qemu,"
        " 1 for other reasons (apt-get install jsonnet prometheus qemu-system-x86)"
    )
    assert skip_summary(reasons[-1:]) == "skipped: 1 test, none for a missing program"
    assert skip_summary([]) == "skipped: no test"


@pytest.mark.e2e
def test_the_ci_scripts_pass_shellcheck() -> None:
    shellcheck = require("shellcheck", "shellcheck")
    scripts = [str(SCRIPT), str(REPO / ".ci" / "run")]
    result = subprocess.run(
        [shellcheck, *scripts], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")

"""`status` names a kernel the lab saw give a forked child its parent's KSM counters, from
the running kernel's release (`<procfs>/sys/kernel/osrelease`) and the series measured:
exactly the series whose recorded fork capture (tests/fixtures/forks/) showed inheritance."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ksm_exporter.derive.fork_inheritance import INHERITING_SERIES, series
from ksm_exporter.sources.roots import Roots
from ksm_exporter.status.build import build_status
from ksm_exporter.status.render import render_text, to_json
from ksm_exporter.status.snapshot import Snapshot, take_snapshot
from lab import forks

pytestmark = pytest.mark.unit

RECORDED = forks.recorded()


def status_of(root: Path) -> Snapshot:
    return take_snapshot(Roots(str(root / "sys"), str(root / "proc")), window_seconds=0)


def test_the_series_named_are_those_the_lab_recorded_inheriting() -> None:
    inheriting = {
        (int(major), int(minor)): fork.release
        for fork in RECORDED
        if forks.findings(fork).inherited
        for major, minor in [fork.release.split(".")[:2]]
    }
    assert inheriting  # the lab measured one at least
    assert inheriting == INHERITING_SERIES


@pytest.mark.parametrize("fork", RECORDED, ids=lambda fork: fork.release)
def test_status_lists_it_on_the_kernel_that_showed_it(fork: forks.ForkCapture) -> None:
    root = forks.FORK_CAPTURES / fork.release / "forked"
    snapshot = status_of(root)
    osrelease = str(root / "proc" / "sys" / "kernel" / "osrelease")
    named = [p for p in snapshot.problems if p.path == osrelease]
    if not forks.findings(fork).inherited:
        assert named == []
        return
    (problem,) = named
    assert problem.value == fork.release
    major, minor = fork.release.split(".")[:2]
    assert problem.reason.startswith(f"kernel {major}.{minor} (measured on {fork.release})")
    assert f"Problem        {problem.reason}:" in render_text(build_status(snapshot))
    assert {"path": osrelease, "value": fork.release, "reason": problem.reason} in to_json(
        build_status(snapshot)
    )["problems"]


def test_another_release_of_a_measured_series_is_named_too(tmp_path: Path) -> None:
    (fork,) = [fork for fork in RECORDED if forks.findings(fork).inherited]
    shutil.copytree(forks.FORK_CAPTURES / fork.release / "forked", tmp_path, dirs_exist_ok=True)
    major, minor = fork.release.split(".")[:2]
    (tmp_path / "proc/sys/kernel/osrelease").write_text(f"{major}.{minor}.158\n")
    reasons = [p.reason for p in status_of(tmp_path).problems]
    assert any(reason.startswith(f"kernel {major}.{minor} (measured on") for reason in reasons)


def test_no_release_file_no_caveat(tmp_path: Path) -> None:
    (fork,) = [fork for fork in RECORDED if forks.findings(fork).inherited]
    shutil.copytree(forks.FORK_CAPTURES / fork.release / "forked", tmp_path, dirs_exist_ok=True)
    (tmp_path / "proc/sys/kernel/osrelease").unlink()
    assert not any("forked child" in p.reason for p in status_of(tmp_path).problems)


@pytest.mark.parametrize(
    ("release", "expected"),
    [
        ("6.1.0-50-cloud-amd64", (6, 1)),
        ("6.12.95+deb12-cloud-amd64", (6, 12)),
        ("6.10-rc1", (6, 10)),
        ("5.19.0", (5, 19)),
        ("linux", None),
        ("6", None),
        ("6.x", None),
    ],
)
def test_the_series_of_a_release(release: str, expected: tuple[int, int] | None) -> None:
    assert series(release) == expected

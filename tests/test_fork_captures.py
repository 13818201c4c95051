"""The fork captures the lab recorded (tests/fixtures/forks/<release>/): a merged process
forked on each lab kernel, its files read as merged, right after fork(), after ksmd scanned
the child and after the child exited. The recorded files agree with mm/ksm.c's accounting
(lab/forks.py), and the exporter serves each phase's per-process figures as the kernel wrote
them, inherited ones included: it corrects nothing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from harness.exposition import parse_samples, render
from ksm_exporter.collector.collection import KsmCollection
from ksm_exporter.reading.host_reader import HostReader
from ksm_exporter.sources.roots import Roots
from lab import forks
from lab.compare import checks, differences
from lab.versions import shown
from tests.support.lab_kernels import sound_findings

pytestmark = pytest.mark.unit

RELEASES = sorted(path.name for path in forks.FORK_CAPTURES.iterdir() if path.is_dir())


def recorded(release: str) -> forks.ForkCapture:
    return forks.ForkCapture.read_tree(forks.FORK_CAPTURES / release)


def test_the_lab_s_debian_kernels_are_recorded() -> None:
    assert {"6.1", "6.12"} <= {shown(release) for release in RELEASES}


@pytest.mark.parametrize("release", RELEASES)
def test_the_recorded_files_follow_the_kernel_s_accounting(release: str) -> None:
    fork = recorded(release)
    sound_findings(fork)
    assert list(fork.phases) == list(forks.PHASES)
    for phase in fork.phases.values():
        assert phase.files["proc/sys/kernel/osrelease"].strip() == fork.release


@pytest.mark.parametrize("release", RELEASES)
def test_an_inherited_count_is_counted_twice_in_the_per_process_sum(release: str) -> None:
    """After ksmd scanned the child, the sum over processes exceeds pages_shared +
    pages_sharing by what the child showed at fork: 0 where it starts from 0."""
    fork = recorded(release)
    at_fork = fork.counters("forked", fork.child).get("ksm_merging_pages", 0)
    shared, sharing = fork.ksm("scanned", "pages_shared"), fork.ksm("scanned", "pages_sharing")
    assert shared is not None
    assert sharing is not None
    assert forks.merging_sum(fork, "scanned") - (shared + sharing) == at_fork


@pytest.mark.parametrize("release", RELEASES)
@pytest.mark.parametrize("phase", forks.PHASES)
def test_the_exporter_serves_each_phase_as_the_kernel_wrote_it(release: str, phase: str) -> None:
    fork = recorded(release)
    root = forks.FORK_CAPTURES / release / phase
    text = render(
        KsmCollection(HostReader(Roots(str(root / "sys"), str(root / "proc")), fork.page_size))
    )
    capture = fork.phases[phase]
    assert differences(checks(capture, text)) == []
    if phase == "forked" and forks.findings(fork).inherited:
        child = fork.counters(phase, fork.child)["ksm_merging_pages"]
        samples = parse_samples(text)
        key = ("ksm_process_merging_pages", (("pid", str(fork.child)),))
        assert samples[key] == child > 0


@pytest.mark.parametrize("release", RELEASES)
def test_recording_the_same_kernel_again_changes_no_path(release: str, tmp_path: Path) -> None:
    fork = recorded(release)
    shifted = {pid: pid + 4321 for c in fork.phases.values() for pid in c.pids()}
    rerun = forks.ForkCapture(
        fork.release,
        fork.page_size,
        {role: None if pid is None else shifted[pid] for role, pid in fork.roles.items()},
        fork.workload,
        {name: c.with_pids(shifted) for name, c in fork.phases.items()},
        fork.notes,
    )
    forks.record(rerun, tmp_path)
    assert tree(tmp_path / release) == tree(forks.FORK_CAPTURES / release)
    assert forks.drift(rerun, tmp_path) is None


def tree(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in directory.rglob("*")
        if path.is_file()
    }


def test_a_child_with_half_its_parent_s_counts_is_reported() -> None:
    fork = recorded(RELEASES[0])
    child = fork.phases["forked"]
    files = {**child.files, f"proc/{fork.child}/ksm_merging_pages": "512\n"}
    files[f"proc/{fork.child}/ksm_stat"] = "ksm_rmap_items 512\nksm_merging_pages 512\n"
    broken = replace(fork, phases={**fork.phases, "forked": replace(child, files=files)})
    found = forks.findings(broken)
    assert found.inherited is None
    assert any("the child at fork shows" in problem for problem in found.problems)

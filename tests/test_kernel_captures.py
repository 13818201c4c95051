"""The trees captured from real kernels by the lab (tests/fixtures/kernels/<release>/): the
exporter serves exactly the values the kernel's own files hold, on every kernel generation."""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path

import pytest

from harness.exposition import render
from harness.paths import REPO
from ksm_exporter.collector.collection import KsmCollection
from ksm_exporter.reading.host_reader import HostReader
from ksm_exporter.sources.roots import Roots
from lab.captures import KERNEL_CAPTURES, Capture
from lab.compare import checks, differences, unknown_files
from lab.recording import drift, record

pytestmark = pytest.mark.unit

IMPORTS_THE_EXPORTER = re.compile(r"^\s*(from|import) ksm_exporter\b", re.MULTILINE)
RELEASES = sorted(path.name for path in KERNEL_CAPTURES.iterdir() if path.is_dir())


def captured(release: str) -> tuple[Capture, Path]:
    directory = KERNEL_CAPTURES / release
    return Capture.read_tree(directory), directory


def test_captures_of_several_kernel_generations_are_committed() -> None:
    assert len({tuple(release.split(".")[:2]) for release in RELEASES}) >= 3


@pytest.mark.parametrize("release", RELEASES)
def test_the_scrape_taken_in_the_guest_agrees_with_the_kernel_files(release: str) -> None:
    capture, _ = captured(release)
    found = checks(capture, capture.exposition)
    assert differences(found) == []
    present = [check for check in found if check.expected is not None]
    ksm_files = [path for path in capture.files if path.startswith("sys/kernel/mm/ksm/")]
    assert len(present) > len(ksm_files)


@pytest.mark.parametrize("release", RELEASES)
def test_the_exporter_on_the_captured_tree_serves_the_captured_values(release: str) -> None:
    capture, directory = captured(release)
    roots = Roots(str(directory / "sys"), str(directory / "proc"))
    text = render(KsmCollection(HostReader(roots, capture.page_size)))
    assert differences(checks(capture, text)) == []


@pytest.mark.parametrize("release", RELEASES)
def test_each_workload_has_series_and_kernel_threads_have_none(release: str) -> None:
    capture, _ = captured(release)
    workloads = [capture.roles[role] for role in ("madvise", "prctl") if capture.roles[role]]
    threads = [capture.roles[role] for role in ("kernel_thread", "ksmd")]
    for pid in threads:
        assert capture.files[f"proc/{pid}/ksm_stat"] == ""  # kernel threads: empty ksm_stat
    assert workloads
    merging = {
        check.series: check.actual
        for check in checks(capture, capture.exposition)
        if check.series.startswith("ksm_process_merging_pages{")
    }
    for pid in workloads:
        assert (merging[f'ksm_process_merging_pages{{pid="{pid}"}}'] or 0) > 0
    for pid in threads:
        assert merging[f'ksm_process_merging_pages{{pid="{pid}"}}'] is None


@pytest.mark.parametrize("release", RELEASES)
def test_every_captured_ksm_file_has_an_expected_series(release: str) -> None:
    capture, _ = captured(release)
    assert unknown_files(capture) == []


def test_the_expected_values_are_not_the_exporter_s_own() -> None:
    """The comparison states every expected value itself: it imports nothing of the exporter."""
    for module in ("captures", "compare", "versions"):
        text = (REPO / "lab" / f"{module}.py").read_text()
        assert not IMPORTS_THE_EXPORTER.search(text), module


@pytest.mark.parametrize("release", RELEASES)
def test_recording_the_same_kernel_again_changes_no_path_and_no_pid(
    release: str, tmp_path: Path
) -> None:
    """The processes the lab starts get new pids on every run; the recorded tree does not."""
    capture, directory = captured(release)
    threads = {capture.roles["kernel_thread"], capture.roles["ksmd"]}
    shifted = {pid: pid + 4321 for pid in capture.pids() if pid not in threads}
    rerun = capture.with_pids(shifted)
    assert rerun.pids() != capture.pids()
    (tmp_path / "kernels").mkdir()
    record(rerun, tmp_path / "kernels")
    assert tree(tmp_path / "kernels" / release) == tree(directory)


def test_a_plain_run_reports_what_a_kernel_offers_beyond_its_committed_capture(
    tmp_path: Path,
) -> None:
    release = RELEASES[0]
    capture, directory = captured(release)
    shutil.copytree(directory, tmp_path / release)
    assert drift(capture, tmp_path) is None
    files = {**capture.files, "sys/kernel/mm/ksm/pages_migrated": "0\n"}
    newer = dataclasses.replace(capture, files=files)
    assert "['pages_migrated'] more" in (drift(newer, tmp_path) or "")


def tree(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in directory.rglob("*")
        if path.is_file()
    }

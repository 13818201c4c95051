"""The trees captured from real kernels by the lab (tests/fixtures/kernels/<release>/): the
exporter serves exactly the values the kernel's own files hold, on every kernel generation."""

from __future__ import annotations

from pathlib import Path

import pytest

from ksm_exporter.collector.collection import KsmCollection
from ksm_exporter.sources.roots import Roots
from lab.captures import KERNEL_CAPTURES, Capture
from lab.compare import checks, differences
from tests.support.exposition import render

pytestmark = pytest.mark.unit

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
    text = render(KsmCollection(roots, capture.page_size))
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

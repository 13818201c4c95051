"""Figures that stay true where real kernels differ from a healthy fixture."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.exposition import parse_samples, render, value
from ksm_exporter.collector.collection import KsmCollection
from ksm_exporter.reading.host_reader import HostReader
from ksm_exporter.sources.kernel_file import BadValue
from ksm_exporter.sources.ksm_stat import parse_ksm_stat
from ksm_exporter.sources.roots import Roots
from ksm_exporter.status.build import build_status
from ksm_exporter.status.render import render_text
from ksm_exporter.status.snapshot import take_snapshot
from tests.support.sampling import ManualClock, copy_fixture, write_ksm

pytestmark = pytest.mark.unit

PAGE_SIZE = 4096


def test_negative_zero_page_count_leaves_saved_memory_out(tmp_path: Path) -> None:
    """Some 6.6-6.9 kernels show ksm_zero_pages as -1: omitted, counted, never taken as 0."""
    roots = copy_fixture("current", tmp_path)
    write_ksm(roots, "ksm_zero_pages", -1)
    samples = parse_samples(render(KsmCollection(HostReader(roots, PAGE_SIZE))))
    assert ("ksm_memory_saved_bytes", ()) not in samples
    assert ("ksm_memory_saved_ratio", ()) not in samples
    assert ("ksm_zero_pages", ()) not in samples
    assert value(samples, "ksm_exporter_collect_errors_total", source="sysfs") == 1
    assert value(samples, "ksm_pages_sharing") == 30000  # the rest is served
    assert value(samples, "ksm_mappings_per_shared_page") == 26.0


def test_unshared_pages_with_none_sharing_serve_plus_infinity(tmp_path: Path) -> None:
    roots = copy_fixture("current", tmp_path)
    write_ksm(roots, "pages_shared", 0)
    write_ksm(roots, "pages_sharing", 0)
    write_ksm(roots, "pages_unshared", 4500)
    text = render(KsmCollection(HostReader(roots, PAGE_SIZE)))
    assert "ksm_unshared_pages_per_sharing_page +Inf\n" in text
    assert "ksm_mappings_per_shared_page" not in text


def test_run_with_the_offline_bit_is_served_as_read(tmp_path: Path) -> None:
    roots = copy_fixture("current", tmp_path)
    write_ksm(roots, "run", 5)
    samples = parse_samples(render(KsmCollection(HostReader(roots, PAGE_SIZE))))
    assert value(samples, "ksm_run") == 5
    assert value(samples, "ksm_exporter_collect_errors_total", source="sysfs") == 0


def status_text(tmp_path: Path) -> str:
    roots = Path(tmp_path, "current")
    clock = ManualClock()

    def sleep(seconds: float) -> None:
        clock.now += seconds

    snapshot = take_snapshot(
        Roots(str(roots / "sys"), str(roots / "proc")),
        0.2,
        3,
        clock=clock,
        sleep=sleep,
        page_size=PAGE_SIZE,
        clock_ticks=100,
    )
    return render_text(build_status(snapshot))


def test_status_explains_the_offline_bit(tmp_path: Path) -> None:
    roots = copy_fixture("current", tmp_path)
    write_ksm(roots, "run", 5)
    text = status_text(tmp_path)
    assert "KSM            running, paused while memory is taken offline (run=5)" in text


def test_status_says_page_counts_are_kept_while_stopped(tmp_path: Path) -> None:
    roots = copy_fixture("current", tmp_path)
    write_ksm(roots, "run", 0)
    text = status_text(tmp_path)
    assert "KSM            stopped (run=0)" in text
    assert "(kept from the last pass while KSM is not running" in text


def test_status_states_mappings_per_shared_page_and_infinite_waste(tmp_path: Path) -> None:
    roots = copy_fixture("current", tmp_path)
    assert "Sharing        26.00 mappings per shared page" in status_text(tmp_path)
    write_ksm(roots, "pages_sharing", 0)
    text = status_text(tmp_path)
    assert "Unshared       all unshared pages scanned, none sharing (wasted effort)" in text


@pytest.mark.parametrize("key", [b"ksm_rmap_items", b"ksm_merging_pages", b"ksm_zero_pages"])
def test_per_process_count_of_two_to_the_64_minus_1_is_a_bad_value(key: bytes) -> None:
    """The kernel bug that shows ksm_zero_pages as -1 shows per process as 2^64-1."""
    with pytest.raises(BadValue, match="negative count"):
        parse_ksm_stat(b"ksm_process_profit 0\n" + key + b" 18446744073709551615\n")

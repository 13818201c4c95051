"""A fixture tree's whole exposition compared to a checked-in file.

Regenerate after an intended change with `UPDATE_GOLDEN=1 make test`, then read the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.exposition import parse_samples, render, value, without_self_metrics
from harness.paths import GOLDEN, fixture_roots
from ksm_exporter.collector.collection import KsmCollection
from ksm_exporter.reading.host_reader import HostReader
from ksm_exporter.sources.roots import Roots
from tests.support.sampling import CLOCK_TICKS, sampled_collection

pytestmark = pytest.mark.unit

PAGE_SIZE = 4096  # fixed so the golden files hold on hosts with other page sizes


def matches_golden(text: str, name: str) -> None:
    golden = GOLDEN / f"{name}.prom"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


@pytest.mark.parametrize("fixture", ["current", "old-kernel", "broken"])
def test_exposition_matches_golden_file(fixture: str) -> None:
    collection = KsmCollection(
        HostReader(fixture_roots(fixture), PAGE_SIZE, clock_ticks=CLOCK_TICKS)
    )
    matches_golden(without_self_metrics(render(collection)), fixture)


def test_sampled_exposition_matches_golden_file(tmp_path: Path) -> None:
    """The `current` fixture once the sampler has seen full scans complete."""
    text = without_self_metrics(render(sampled_collection(tmp_path, PAGE_SIZE)))
    matches_golden(text, "current-sampled")


def test_current_kernel_values() -> None:
    samples = parse_samples(render(KsmCollection(HostReader(fixture_roots("current"), PAGE_SIZE))))
    assert value(samples, "ksm_memory_saved_bytes") == (30000 + 250) * 4096
    assert value(samples, "ksm_memory_saved_ratio") == (30250 * 4096) / (16384000 * 1024)
    assert value(samples, "ksm_mappings_per_shared_page") == 26.0
    assert value(samples, "ksm_unshared_pages_per_sharing_page") == 0.15
    assert value(samples, "ksm_sleep_seconds") == 0.02
    assert value(samples, "ksm_advisor_max_cpu_ratio") == 0.7
    assert value(samples, "ksm_stable_node_chains_prune_seconds") == 2.0
    assert value(samples, "ksm_pages_scanned_total") == 9876543210
    assert value(samples, "ksm_general_profit_bytes") == 118000000
    assert value(samples, "ksm_advisor_mode", mode="scan-time") == 1
    assert value(samples, "ksm_advisor_mode", mode="none") == 0
    assert value(samples, "ksm_exporter_collect_errors_total", source="sysfs") == 0


def test_old_kernel_omits_what_it_lacks() -> None:
    samples = parse_samples(
        render(KsmCollection(HostReader(fixture_roots("old-kernel"), PAGE_SIZE)))
    )
    present = {name for name, _ in samples if not name.startswith("ksm_exporter_")}
    assert present == {
        "ksm_available",
        "ksm_run",
        "ksm_pages_to_scan",
        "ksm_sleep_seconds",
        "ksm_pages_shared",
        "ksm_pages_sharing",
        "ksm_pages_unshared",
        "ksm_pages_volatile",
        "ksm_full_scans_total",
        "ksm_page_size_bytes",
        "ksm_memory_saved_bytes",
        "ksm_memory_saved_ratio",
        "ksm_memory_profit_bytes",
        "ksm_mappings_per_shared_page",
        "ksm_unshared_pages_per_sharing_page",
        "ksm_processes_registered",
        "ksm_processes_merging",
        "ksm_process_other_processes",
        "ksm_process_merging_pages",
        "ksm_process_other_merging_pages",
    }
    assert value(samples, "ksm_memory_saved_bytes") == 55 * 4096
    # No general_profit: general_profit_show()'s identity from the fixture's files, sharing 55,
    # rmap items 10 + 55 + 300 + 4, no ksm_zero_pages file.
    assert value(samples, "ksm_memory_profit_bytes") == 55 * 4096 - (10 + 55 + 300 + 4) * 64


def test_broken_files_count_as_errors_on_every_collection() -> None:
    collection = KsmCollection(HostReader(fixture_roots("broken"), PAGE_SIZE))
    render(collection)
    samples = parse_samples(render(collection))
    assert value(samples, "ksm_exporter_collect_errors_total", source="sysfs") == 18
    assert value(samples, "ksm_exporter_collect_errors_total", source="meminfo") == 2
    assert value(samples, "ksm_general_profit_bytes") == -8192


def test_no_ksm_serves_available_zero(tmp_path: os.PathLike[str]) -> None:
    samples = parse_samples(render(KsmCollection(HostReader(Roots(str(tmp_path), str(tmp_path))))))
    assert value(samples, "ksm_available") == 0
    assert {n for n, _ in samples if not n.startswith("ksm_exporter_")} == {
        "ksm_available",
        "ksm_page_size_bytes",
    }


def test_default_page_size_is_the_systems() -> None:
    samples = parse_samples(render(KsmCollection(HostReader(fixture_roots("current")))))
    assert value(samples, "ksm_page_size_bytes") == os.sysconf("SC_PAGE_SIZE")


def test_build_info_and_durations_per_source() -> None:
    samples = parse_samples(render(KsmCollection(HostReader(fixture_roots("current")))))
    (build,) = [labels for name, labels in samples if name == "ksm_exporter_build_info"]
    assert dict(build).keys() == {"version", "python_version"}
    for source in ("sysfs", "meminfo"):
        assert 0 < value(samples, "ksm_exporter_collect_duration_seconds", source=source) < 1

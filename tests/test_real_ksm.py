"""Against the real KSM of this machine: a child's identical pages merge, the exporter agrees."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from harness.eventually import eventually
from harness.exporter_process import RunningExporter, running_exporter
from harness.exposition import Samples, names, parse_samples, value
from harness.real_ksm import ksm_control, merging_child, read_ksm
from harness.tools import promtool
from ksm_exporter.sources.ksm_files import KSM_FILES
from ksm_exporter.sources.ksmd import find_ksmd, parse_stat

pytestmark = pytest.mark.realksm


def sysfs_values() -> dict[str, int]:
    values = {}
    for metric in KSM_FILES:
        try:
            values[metric.metric] = read_ksm(metric.name)
        except (OSError, ValueError):
            continue
    return values


def test_exporter_agrees_with_sysfs_while_pages_merge() -> None:
    with ksm_control() as ksm, merging_child(32 << 20) as child, running_exporter() as exporter:
        ksm.set(pages_to_scan=1000, sleep_millisecs=10, run=1)
        child.wait_merged(4000)

        before = sysfs_values()
        text = exporter.get()
        after = sysfs_values()

        samples = parse_samples(text)
        assert value(samples, "ksm_available") == 1
        assert value(samples, "ksm_run") == 1
        compared = 0
        for metric in KSM_FILES:
            if metric.metric not in before:
                continue
            low, high = sorted((before[metric.metric], after[metric.metric]))
            exported = value(samples, metric.metric) * metric.divisor
            assert low <= round(exported) <= high, metric.metric
            compared += 1
        assert compared >= 8
        sharing = value(samples, "ksm_pages_sharing")
        zero = value(samples, "ksm_zero_pages")
        page = value(samples, "ksm_page_size_bytes")
        assert value(samples, "ksm_memory_saved_bytes") == (sharing + zero) * page
        assert sharing > 0
        assert value(samples, "ksm_exporter_collect_errors_total", source="sysfs") == 0

        check = promtool("check", "metrics", stdin=text)
        assert (check.returncode, check.stdout, check.stderr) == (0, "", "")


def ksmd_cpu_seconds(pid: int) -> float:
    """ksmd's CPU time as the kernel's advisor reads it: schedstat, in nanoseconds."""
    with open(f"/proc/{pid}/schedstat", "rb") as f:
        return int(f.read().split()[0]) / 1e9


def ksmd_tick_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        return parse_stat(f.read()).cpu_ticks / os.sysconf("SC_CLK_TCK")


def scrape_until(exporter: RunningExporter, name: str, timeout: float = 30.0) -> Samples:
    def scraped() -> Samples | None:
        samples = parse_samples(exporter.get())
        return samples if name in names(samples) else None

    return eventually(scraped, timeout, interval=0.2, what=f"{name} exported")


def test_scan_cost_of_real_ksmd() -> None:
    ksmd = find_ksmd("/proc")
    assert ksmd is not None, "KSM is writable but no ksmd thread is in sight"
    one_tick = 1 / os.sysconf("SC_CLK_TCK")
    with (
        ksm_control() as ksm,
        merging_child(16 << 20) as child,
        running_exporter("--collector.sample-interval=0.1") as exporter,
    ):
        ksm.set(pages_to_scan=5000, sleep_millisecs=10, run=1)
        child.wait_merged(2000)
        samples = scrape_until(exporter, "ksm_full_scan_duration_seconds")
        assert value(samples, "ksm_full_scan_duration_seconds") > 0
        assert value(samples, "ksm_full_scan_ksmd_cpu_seconds") >= 0
        assert 0 <= value(samples, "ksm_ksmd_cpu_ratio") <= 1.05
        before = ksmd_cpu_seconds(ksmd)
        exported = value(parse_samples(exporter.get()), "ksm_ksmd_cpu_seconds_total")
        assert before <= exported <= ksmd_cpu_seconds(ksmd)

        ksm.set(run=0)  # ksmd stops using CPU, so the exporter and /proc must agree

        def agreed() -> tuple[float] | None:
            exported = value(parse_samples(exporter.get()), "ksm_ksmd_cpu_seconds_total")
            return (exported,) if exported == ksmd_cpu_seconds(ksmd) else None

        (exported,) = eventually(agreed, 10, what="ksmd's CPU time, exported and in /proc")
        # The clock-tick figure agrees, to within its sampled accounting's resolution.
        ticks = ksmd_tick_seconds(ksmd)
        assert abs(exported - ticks) <= max(3 * one_tick, 0.02 * ticks)


def test_status_on_real_ksm() -> None:
    with ksm_control() as ksm, merging_child(16 << 20) as child:
        ksm.set(pages_to_scan=5000, sleep_millisecs=10, run=1)
        child.wait_merged(2000)
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "ksm_exporter",
                "status",
                "--json",
                "--window",
                "2",
                "--top",
                "100",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert (result.returncode, result.stderr) == (0, "")
    document = json.loads(result.stdout)
    assert document["ksm"]["run"] == 1
    assert document["ksmd"]["pid"] == find_ksmd("/proc")
    assert 0 < document["ksmd"]["cpu_ratio"] <= 1.05
    assert document["full_scan"]["completed_in_window"] >= 2
    assert document["full_scan"]["duration_seconds"] > 0
    ours = [p for p in document["processes"]["top"] if p["pid"] == child.pid]
    assert ours, "the merging child is not among the top processes"
    assert ours[0]["merging_pages"] >= 2000

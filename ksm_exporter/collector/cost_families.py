"""What scanning costs, as metric families."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric

from ksm_exporter.collector.gauges import present_gauges
from ksm_exporter.derive.scan_cost import ScanCost
from ksm_exporter.sources.kernel_file import NANOSECONDS
from ksm_exporter.sources.ksmd import Ksmd


def cost_families(ksmd: Ksmd | None, cost: ScanCost) -> Iterator[Metric]:
    if ksmd is not None:
        yield CounterMetricFamily(
            "ksm_ksmd_cpu_seconds",
            "CPU time the ksmd kernel thread has used (schedstat; utime + stime where the "
            "kernel has no schedstat).",
            value=ksmd.cpu_ns / NANOSECONDS,
        )
    figures = (
        (
            "ksm_ksmd_cpu_ratio",
            "Share of one CPU that ksmd used over the last sampling interval.",
            cost.cpu_ratio,
        ),
        (
            "ksm_full_scan_duration_seconds",
            "Time KSM spent running (run = 1) on the last complete full scan, to within one "
            "sampling interval; stopped time does not count.",
            cost.full_scan_seconds,
        ),
        (
            "ksm_full_scan_ksmd_cpu_seconds",
            "ksmd CPU time per full scan, between the last two observed scan completions.",
            cost.cpu_seconds_per_full_scan,
        ),
    )
    yield from present_gauges(figures)

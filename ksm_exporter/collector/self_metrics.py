"""The exporter's observation of itself: build, per-source duration and errors."""

from __future__ import annotations

import platform
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ksm_exporter import __version__
from ksm_exporter.reading.source_stats import SourceStats


def self_families(stats: SourceStats) -> Iterator[Metric]:
    build = GaugeMetricFamily(
        "ksm_exporter_build_info",
        "Version of the exporter and of the Python running it; always 1.",
        labels=["version", "python_version"],
    )
    build.add_metric([__version__, platform.python_version()], 1)
    yield build
    duration = GaugeMetricFamily(
        "ksm_exporter_collect_duration_seconds",
        "Time the last read of each source took.",
        labels=["source"],
    )
    for source, seconds in sorted(stats.durations.items()):
        duration.add_metric([source], seconds)
    yield duration
    errors = CounterMetricFamily(
        "ksm_exporter_collect_errors_total",
        "Kernel files each source could not read or parse.",
        labels=["source"],
    )
    for source, count in sorted(stats.errors.items()):
        errors.add_metric([source], count)
    yield errors

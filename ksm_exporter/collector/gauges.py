"""Gauges of derived figures that are left out while not known."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric


def present_gauges(figures: Iterable[tuple[str, str, float | None]]) -> Iterator[Metric]:
    """One gauge per (name, help, value), leaving out the figures that are not known."""
    for name, help_text, value in figures:
        if value is not None:
            yield GaugeMetricFamily(name, help_text, value=value)

"""The last hour of saved memory and ksmd CPU, for the charts of the status page.

A fixed ring of points, one every STEP_SECONDS, filled from the background sampler's ticks:
its size never grows, whatever the uptime. Three arrays of doubles (time, saved bytes, CPU
share), NaN where a figure was unknown: 360 points take about 9 KiB (bench.history_memory).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterator
from dataclasses import dataclass

from ksm_exporter.derive.savings import saved_pages
from ksm_exporter.derive.scan_cost import cpu_ratio
from ksm_exporter.sources.host import ScanReading

STEP_SECONDS = 10.0
SPAN_SECONDS = 3600.0
POINTS = int(SPAN_SECONDS / STEP_SECONDS)


@dataclass(frozen=True, slots=True)
class Point:
    age_seconds: float  # before the moment the points were taken
    saved_bytes: float | None
    ksmd_cpu_ratio: float | None  # share of one CPU since the point before


def known(value: float) -> float | None:
    return None if math.isnan(value) else value


class History:
    """Points at least `step` seconds apart; the oldest is overwritten once `size` are kept."""

    def __init__(self, page_size: int, size: int = POINTS, step: float = STEP_SECONDS) -> None:
        self.page_size = page_size
        self.size = size
        self.step = step
        self._at = array("d", [math.nan]) * size
        self._saved = array("d", [math.nan]) * size
        self._cpu = array("d", [math.nan]) * size
        self._next = 0  # where the next point goes
        self._count = 0
        self._mark: ScanReading | None = None  # the sample behind the newest point
        self.previous: ScanReading | None = None  # the tick before the latest one
        self.latest: ScanReading | None = None

    def observe(self, sample: ScanReading) -> None:
        """One sampler tick; keeps a point when `step` has passed since the last one."""
        self.previous, self.latest = self.latest, sample
        mark = self._mark
        if mark is not None and sample.at - mark.at < self.step:
            return
        pages = None if sample.ksm is None else saved_pages(sample.ksm)
        ratio = None if mark is None else cpu_ratio(mark, sample)
        slot = self._next
        self._at[slot] = sample.at
        self._saved[slot] = math.nan if pages is None else float(pages * self.page_size)
        self._cpu[slot] = math.nan if ratio is None else ratio
        self._next = (slot + 1) % self.size
        self._count = min(self._count + 1, self.size)
        self._mark = sample

    def points(self, now: float) -> tuple[Point, ...]:
        """Oldest first, aged from `now` (the sampler's clock)."""
        return tuple(self._points(now))

    def _points(self, now: float) -> Iterator[Point]:
        first = (self._next - self._count) % self.size
        for i in range(self._count):
            slot = (first + i) % self.size
            yield Point(now - self._at[slot], known(self._saved[slot]), known(self._cpu[slot]))

"""The background sampler behind the scan-cost metrics: a few small reads per tick.

A scrape every 15 s or more cannot see a full scan that takes a few seconds end, so a cheap
sampler watches `full_scans`, `run` and ksmd's CPU time more often. Each tick reads a few
sysfs files and two procfs files (tens of microseconds), inline on the event loop: a hop to
a worker thread would cost more than the reads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ksm_exporter.derive.scan_cost import ScanCost, advance
from ksm_exporter.sources.host import ScanReading

log = logging.getLogger(__name__)


class CostSampler:
    """Samples `full_scans`, `run` and ksmd's CPU time; `cost` holds the figures so far."""

    def __init__(self, read: Callable[[], ScanReading], interval: float = 1.0) -> None:
        self.read = read  # the host reader's read_scan
        self.interval = interval
        self.cost = ScanCost()
        self.observers: list[Callable[[ScanReading], None]] = []  # called with every reading

    def tick(self) -> ScanCost:
        reading = self.read()
        self.cost = advance(self.cost, reading)
        for observe in self.observers:
            observe(reading)
        return self.cost

    async def run(self) -> None:
        """Ticks every `interval` seconds until cancelled, without drifting."""
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        while True:
            try:
                self.tick()
            except Exception:  # the readers never raise; should one, keep sampling
                log.exception("scan-cost sample failed")
            next_tick += self.interval
            now = loop.time()
            if next_tick < now:  # the loop was held up: skip the ticks missed
                next_tick = now + self.interval
            await asyncio.sleep(next_tick - now)

"""The background sampler behind the scan-cost metrics: two small reads per tick.

A scrape every 15 s or more cannot see a full scan that takes a few seconds end, so a cheap
sampler watches `full_scans` and ksmd's CPU time more often. Each tick reads one sysfs file
and one procfs file (tens of microseconds), inline on the event loop: a hop to a worker
thread would cost more than the reads.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable

from ksm_exporter.derive.scan_cost import CostSample, ScanCost, advance
from ksm_exporter.sources.ksmd import KsmdLocator
from ksm_exporter.sources.sysfs import read_full_scans

log = logging.getLogger(__name__)


def clock_ticks_per_second() -> int:
    return os.sysconf("SC_CLK_TCK")


class CostSampler:
    """Samples `full_scans` and ksmd's CPU time; `cost` holds the figures so far."""

    def __init__(
        self,
        sysfs_root: str,
        ksmd: KsmdLocator,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        clock_ticks: int | None = None,
    ) -> None:
        self.sysfs_root = sysfs_root
        self.ksmd = ksmd
        self.interval = interval
        self.clock = clock
        self.clock_ticks = clock_ticks or clock_ticks_per_second()
        self.cost = ScanCost()
        self.ticks = 0

    def read(self) -> CostSample:
        at = self.clock()
        full_scans = read_full_scans(self.sysfs_root)
        if full_scans is None:  # no KSM: no ksmd to look for
            return CostSample(at, None)
        ksmd = self.ksmd.read().ksmd
        if ksmd is None:
            return CostSample(at, full_scans)
        return CostSample(at, full_scans, ksmd.pid, ksmd.cpu_ticks)

    def tick(self) -> ScanCost:
        self.ticks += 1
        self.cost = advance(self.cost, self.read(), self.clock_ticks)
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

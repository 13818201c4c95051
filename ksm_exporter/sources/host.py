"""Reading the host: what one read of sysfs and procfs returns.

Vocabulary: a *reading* is what one read of the host (or of one of its sources) returns, at
one instant; nothing here is derived. The sampler behind the cost metrics takes a
`ScanReading` each tick; a scrape takes every source's reading.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ksm_exporter.sources.ksmd import KsmdLocator
from ksm_exporter.sources.sysfs import KsmSysfs, read_numbers

SAMPLED_FILES = (
    "full_scans",
    "run",
    "pages_scanned",
    "pages_to_scan",
    "sleep_millisecs",
    "pages_sharing",
    "ksm_zero_pages",
    "general_profit",
)


@dataclass(frozen=True, slots=True)
class ScanReading:
    """The few KSM files and ksmd's CPU time the sampler reads each tick. None where the
    file or the thread was not there."""

    at: float  # monotonic seconds
    full_scans: int | None
    run: int | None = None
    ksmd_pid: int | None = None
    ksmd_cpu_ns: int | None = None
    ksm: KsmSysfs | None = None  # the sampled files

    def number(self, name: str) -> int | None:
        return None if self.ksm is None else self.ksm.values.get(name)


def read_scan(
    sysfs_root: str, ksmd: KsmdLocator, clock: Callable[[], float] = time.monotonic
) -> ScanReading:
    """Never raises."""
    at = clock()
    ksm = read_numbers(sysfs_root, SAMPLED_FILES)
    if ksm.full_scans is None:  # no KSM: no ksmd to look for
        return ScanReading(at, None)
    thread = ksmd.read().ksmd
    return ScanReading(
        at,
        ksm.full_scans,
        run=ksm.run,
        ksmd_pid=None if thread is None else thread.pid,
        ksmd_cpu_ns=None if thread is None else thread.cpu_ns,
        ksm=ksm,
    )

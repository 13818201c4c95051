"""What the sampler behind the cost figures reads each tick: a few KSM files and ksmd's
CPU time (`ScanReading`). The whole host is read by reading/host_reader.py's `HostReader`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from ksm_exporter.sources.ksm_files import DECLARED, Declared
from ksm_exporter.sources.ksmd import KsmdLocator
from ksm_exporter.sources.sysfs import KsmSysfs, read_numbers

SAMPLED_FILES = (
    "full_scans",
    "run",
    "pages_scanned",
    "pages_to_scan",
    "sleep_millisecs",
    "pages_shared",
    "pages_sharing",
    "pages_unshared",
    "pages_volatile",
    "ksm_zero_pages",
    "general_profit",
    "pages_skipped",
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
    page_size: int | None = None
    ksmd_run_delay_ns: int | None = None  # time ksmd waited for a CPU (schedstat)

    def number(self, name: str) -> int | None:
        return None if self.ksm is None else self.ksm.values.get(name)


def read_scan(
    sysfs_root: str,
    ksmd: KsmdLocator,
    clock: Callable[[], float] = time.monotonic,
    ksm_files: Declared = DECLARED,
) -> ScanReading:
    """Never raises."""
    at = clock()
    ksm = read_numbers(sysfs_root, SAMPLED_FILES, ksm_files)
    if ksm.full_scans is None:  # no KSM: no ksmd to look for
        return ScanReading(at, None)
    thread = ksmd.read().ksmd
    return ScanReading(
        at,
        ksm.full_scans,
        run=ksm.run,
        ksmd_pid=None if thread is None else thread.pid,
        ksmd_cpu_ns=None if thread is None else thread.cpu_ns,
        ksmd_run_delay_ns=None if thread is None else thread.run_delay_ns,
        ksm=ksm,
        page_size=os.sysconf("SC_PAGE_SIZE"),
    )

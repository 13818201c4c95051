"""Reading the host: what one read of sysfs and procfs returns.

Vocabulary: a *reading* is what one read of the host (or of one of its sources) returns, at
one instant; nothing here is derived. The sampler behind the cost metrics takes a
`ScanReading` each tick; a scrape takes every source's reading.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from ksm_exporter.sources.host_memory import QemuProcess, read_qemu_processes
from ksm_exporter.sources.kernel_config import KernelHz, read_kernel_hz
from ksm_exporter.sources.ksm_files import DECLARED, Declared
from ksm_exporter.sources.ksmd import KsmdLocator, KsmdReading
from ksm_exporter.sources.meminfo import MeminfoReading, read_meminfo
from ksm_exporter.sources.rival_tuners import running_rivals
from ksm_exporter.sources.roots import Roots
from ksm_exporter.sources.sysfs import HeldKsmSysfs, KsmSysfs, SysfsReading, read_numbers

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


class Host:
    """The one reader of the host, for the server and `status` alike.

    Rooted at `Roots` as prometheus/procfs's `FS` is at its mount point: it builds every path
    it reads, holds the open KSM files (`HeldKsmSysfs`) and the ksmd locator, and returns
    typed readings; it never raises. The per-process sweep, which needs the selection of
    processes (derive), is composed on top of it by collector/processes.py.
    """

    def __init__(
        self,
        roots: Roots,
        ksm_files: Declared = DECLARED,
        clock: Callable[[], float] = time.monotonic,
        clock_ticks: int | None = None,
    ) -> None:
        self.roots = roots
        self.ksm_files = ksm_files
        self.clock = clock
        self.sysfs = HeldKsmSysfs(roots.sysfs, ksm_files)
        self.ksmd = KsmdLocator(roots.procfs, clock, clock_ticks)
        boot = "/boot" if os.path.realpath(roots.procfs) == "/proc" else None
        self.kernel_hz: KernelHz = read_kernel_hz(roots.procfs, boot)

    def read_sysfs(self) -> SysfsReading:
        return self.sysfs.read()

    def read_meminfo(self) -> MeminfoReading:
        return read_meminfo(self.roots.meminfo)

    def read_ksmd(self) -> KsmdReading:
        return self.ksmd.read()

    def read_qemu_processes(self) -> tuple[QemuProcess, ...] | None:
        """What the other tuners count as QEMU's memory: read for `status` only, never by a
        scrape (it reads a file of every process)."""
        return read_qemu_processes(self.roots.procfs, sees_hidden=os.geteuid() == 0)

    def read_rival_tuners(self) -> list[tuple[int, str]]:
        """(pid, name) of the other tuners running."""
        return running_rivals(self.roots.procfs)

    def read_scan(self) -> ScanReading:
        """What the sampler reads each tick: a few KSM files, opened afresh, and ksmd."""
        return read_scan(self.roots.sysfs, self.ksmd, self.clock, self.ksm_files)

    def close(self) -> None:
        self.sysfs.close()

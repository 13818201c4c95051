"""Everything `status` shows, read once from the sources, plus ksmd watched over a window."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from ksm_exporter.derive.other_tuners import (
    AdvisorChoice,
    KsmtunedChoice,
    Memory,
    kernel_advisor,
    ksmtuned,
)
from ksm_exporter.derive.process_selection import ProcessReading, select_processes
from ksm_exporter.derive.savings import Savings, derive_savings
from ksm_exporter.derive.scan_cost import ScanCost, advance, cpu_ratio
from ksm_exporter.derive.tuning import Advice, HostNow, TuningOptions, advise, host_now
from ksm_exporter.sources.host import ScanReading, read_scan
from ksm_exporter.sources.host_memory import read_qemu_resident_bytes
from ksm_exporter.sources.kernel_file import NANOSECONDS, Problem
from ksm_exporter.sources.ksmd import KsmdLocator
from ksm_exporter.sources.meminfo import Meminfo, read_meminfo
from ksm_exporter.sources.process_identity import read_identity
from ksm_exporter.sources.process_sweep import ProcessSweeper
from ksm_exporter.sources.roots import Roots
from ksm_exporter.sources.sysfs import KsmSysfs, ksm_dir, read_ksm_sysfs

# How often full_scans and ksmd are sampled during the window: often enough to time full
# scans that complete within it, still only a few small reads a tick.
WINDOW_STEP_SECONDS = 0.1


class KsmUnreadable(Exception):
    """KSM cannot be read at all: the one sentence `status` exits with."""


@dataclass(frozen=True, slots=True)
class CpuWindow:
    """ksmd and full_scans at the start and end of the window, and what came of them."""

    first: ScanReading
    cost: ScanCost

    @property
    def seconds(self) -> float:
        last = self.cost.last
        return 0.0 if last is None else last.at - self.first.at

    @property
    def cpu_ratio(self) -> float | None:
        last = self.cost.last
        return None if last is None else cpu_ratio(self.first, last)

    @property
    def full_scans_completed(self) -> int | None:
        last = self.cost.last
        if last is None or last.full_scans is None or self.first.full_scans is None:
            return None
        return last.full_scans - self.first.full_scans

    @property
    def ksmd_cpu_seconds(self) -> float | None:
        last = self.cost.last
        if last is None or last.ksmd_cpu_ns is None:
            return None
        return last.ksmd_cpu_ns / NANOSECONDS

    @property
    def cpu_seconds_per_full_scan(self) -> float | None:
        """ksmd CPU over the whole window divided by the scans completed in it: unlike the
        last scan's figure, it needs only one completion."""
        last, scans = self.cost.last, self.full_scans_completed
        if last is None or not scans or scans < 0:
            return None
        if last.ksmd_cpu_ns is None or self.first.ksmd_cpu_ns is None:
            return None
        if last.ksmd_pid != self.first.ksmd_pid:
            return None
        return (last.ksmd_cpu_ns - self.first.ksmd_cpu_ns) / (NANOSECONDS * scans)


@dataclass(frozen=True, slots=True)
class Tuning:
    """The advice, and what the tuners operators run today would set instead."""

    options: TuningOptions
    advice: Advice
    ksm_dir: str  # where the settings are written
    ksmtuned: KsmtunedChoice | None
    kernel_advisor: AdvisorChoice | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    ksm: KsmSysfs
    savings: Savings
    mem_total_bytes: int | None
    page_size: int
    window: CpuWindow
    processes: ProcessReading | None
    problems: tuple[Problem, ...]
    tuning: Tuning | None = None


def read_processes(procfs_root: str, top: int) -> ProcessReading:
    sweeper = ProcessSweeper(procfs_root)
    try:
        sweep = sweeper.sweep()
    finally:
        sweeper.close()
    selection = select_processes(sweep.registered, top)
    identities = {p.pid: read_identity(procfs_root, p.pid) for p in selection.own}
    return ProcessReading(sweep, selection, identities)


def take_snapshot(
    roots: Roots,
    window_seconds: float = 1.0,
    top: int = 10,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    page_size: int | None = None,
    clock_ticks: int | None = None,
    tuning: TuningOptions | None = None,
) -> Snapshot:
    """Raises KsmUnreadable where the kernel's KSM directory cannot be read."""
    sysfs = read_ksm_sysfs(roots.sysfs)
    ksm = sysfs.snapshot
    if not ksm.available:
        raise KsmUnreadable(no_ksm_sentence(roots.sysfs, sysfs.problems))
    page_size = page_size or os.sysconf("SC_PAGE_SIZE")
    meminfo = read_meminfo(roots.meminfo)
    processes = read_processes(roots.procfs, top)
    ksmd = KsmdLocator(roots.procfs, clock, clock_ticks)
    ksmd_problems = ksmd.read().problems
    window = watch_ksmd(lambda: read_scan(roots.sysfs, ksmd, clock), window_seconds, sleep)
    mem_total = meminfo.mem_total_bytes
    options = tuning or TuningOptions()
    advice = advise(
        window.cost, settings_at_end(host_now(ksm, processes, page_size), window), options
    )
    return Snapshot(
        ksm=ksm,
        savings=derive_savings(ksm, page_size, mem_total),
        mem_total_bytes=mem_total,
        page_size=page_size,
        window=window,
        processes=processes,
        problems=(*sysfs.problems, *meminfo.problems, *ksmd_problems, *processes.problems),
        tuning=compare_tuners(
            roots,
            ksm,
            advice,
            options,
            processes=processes,
            page_size=page_size,
            meminfo=meminfo.meminfo,
        ),
    )


def settings_at_end(host: HostNow, window: CpuWindow) -> HostNow:
    """The settings the window's last sample saw: they may have changed while it watched."""
    last = window.cost.last
    if last is None or last.ksm is None:
        return host
    return replace(
        host,
        run=last.run,
        pages_to_scan=last.number("pages_to_scan"),
        sleep_millisecs=last.number("sleep_millisecs"),
    )


def compare_tuners(
    roots: Roots,
    ksm: KsmSysfs,
    advice: Advice,
    options: TuningOptions,
    *,
    processes: ProcessReading,
    page_size: int,
    meminfo: Meminfo,
) -> Tuning:
    """The advice beside what ksmtuned/MOM and the kernel's advisor would set now."""
    mem_total, free = meminfo.mem_total_bytes, meminfo.free_bytes
    choice = None
    if mem_total and free is not None and ksm.pages_to_scan is not None:
        pids = [p.pid for p in processes.sweep.registered]
        committed = read_qemu_resident_bytes(roots.procfs, pids, page_size)
        memory = Memory(mem_total, free, committed)
        choice = ksmtuned(memory, ksm.pages_to_scan, advice.model, ksm.sleep_millisecs)
    advisor = None
    if advice.model is not None:
        advisor = kernel_advisor(
            advice.model,
            ksm.advisor_target_scan_time,
            ksm.advisor_max_cpu,
            ksm.advisor_min_pages_to_scan,
            ksm.advisor_max_pages_to_scan,
        )
    return Tuning(options, advice, ksm_dir(roots.sysfs), choice, advisor)


def watch_ksmd(
    read: Callable[[], ScanReading], seconds: float, sleep: Callable[[float], None]
) -> CpuWindow:
    first = read()
    cost = advance(ScanCost(), first)
    deadline = first.at + seconds
    while True:
        last = cost.last
        remaining = deadline - (first.at if last is None else last.at)
        if remaining <= 1e-9:
            break
        sleep(min(WINDOW_STEP_SECONDS, remaining))
        cost = advance(cost, read())
    return CpuWindow(first, cost)


def no_ksm_sentence(sysfs_root: str, problems: tuple[Problem, ...]) -> str:
    directory = ksm_dir(sysfs_root)
    if problems:
        return f"cannot read {directory}: {problems[0].reason}."
    return f"this kernel has no KSM: {directory} does not exist."

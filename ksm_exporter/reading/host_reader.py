"""`HostReader`: one reading of every source, the per-process sweep off the event loop, and
the sampler behind the cost figures.

Vocabulary: a *reading* is what one read of the host (or of one of its sources) returns, at
one instant; nothing here is derived beyond choosing which processes get series of their own.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Protocol, TypeVar

from ksm_exporter.derive.causes import Explanation, TunerAtWork, merges_little
from ksm_exporter.derive.process_selection import ProcessReading
from ksm_exporter.reading.cost_sampler import CostSampler
from ksm_exporter.reading.kept import Kept
from ksm_exporter.reading.off_loop import OffLoop
from ksm_exporter.reading.processes import ProcessOptions, ProcessReader
from ksm_exporter.reading.source_stats import SourceStats
from ksm_exporter.reading.why import Explainer, MemoryKept, tuners_at_work
from ksm_exporter.sources.host import ScanReading, read_scan
from ksm_exporter.sources.host_memory import QemuProcess, qemu_processes_among
from ksm_exporter.sources.kernel_config import KernelHz, read_kernel_hz
from ksm_exporter.sources.kernel_file import Problem
from ksm_exporter.sources.kernel_release import read_release
from ksm_exporter.sources.ksm_files import DECLARED, Declared
from ksm_exporter.sources.ksm_stat import PROCESS_FIELDS, ProcessField
from ksm_exporter.sources.ksmd import KsmdLocator, KsmdReading
from ksm_exporter.sources.meminfo import MeminfoReading, read_meminfo
from ksm_exporter.sources.process_identity import (
    LABELS,
    ProcessIdentity,
    ProcessLabel,
    read_identity,
)
from ksm_exporter.sources.process_names import read_process_names
from ksm_exporter.sources.process_sweep import ProcessKsm
from ksm_exporter.sources.rival_tuners import rivals_among
from ksm_exporter.sources.roots import Roots
from ksm_exporter.sources.sysfs import HeldKsmSysfs, SysfsReading
from ksm_exporter.sources.tuner_state import TunerRecord, read_record

# How long a read waits for the per-process sweep: far above its cost on any real host
# (about 10 µs a process), well within Prometheus' default 10 s scrape timeout.
SWEEP_DEADLINE = 5.0
# How old the QEMU processes and the tuners running may be when a view shows them while a
# walk of /proc for newer ones runs in the background: three reloads of the status page.
TUNER_PROCESSES_STALE_SECONDS = 30.0
# How long what a walk of a process's memory found explains it (reading/why.py): a minute,
# a few scrapes, so that 100 processes that merge little cost their smaps once a minute.
MEMORY_KEPT_SECONDS = 60.0


class HasProblems(Protocol):
    @property
    def problems(self) -> tuple[Problem, ...]: ...


R = TypeVar("R", bound=HasProblems)
Timed = tuple[ProcessReading, float]  # a sweep and how long it took


@dataclass(frozen=True, slots=True)
class TunerProcesses:
    """What the other tuners' rules count, from one walk of every process's name."""

    qemu: tuple[QemuProcess, ...] | None  # None where the walk may miss some
    rivals: list[tuple[int, str]]  # (pid, name) of the other tuners running


@dataclass(frozen=True, slots=True)
class HostReading:
    """Everything one read of the host returned."""

    sysfs: SysfsReading
    meminfo: MeminfoReading
    processes: ProcessReading | None = None  # None when the per-process sweep is off
    ksmd: KsmdReading | None = None  # None where the kernel has no KSM: no ksmd to look for
    tuner: TunerRecord | None = None  # `ksm-exporter tune`'s state file, where it has one
    # Why each process with series of its own that merges little does (pid -> explanation);
    # None where not looked at (the sweep off, or a reader that does not explain).
    explanations: dict[int, Explanation] | None = None


class HostReader:
    """The one reader of the host, for the server, `status` and `tune` alike.

    Rooted at `Roots` as prometheus/procfs's `FS` is at its mount point: it builds every path
    it reads, holds the open KSM files (`HeldKsmSysfs`) and the ksmd locator, and returns
    typed readings; it never raises. The sysfs, meminfo and ksmd reads are a few dozen small
    files: they run inline, as a hop to a worker thread costs more than the reads
    themselves. The per-process sweep reads a file per process and runs in a worker thread
    meanwhile (`read_async`). `sampler` holds the scan-cost figures; the server ticks it in
    the background, `status` and `tune` tick it themselves. `close()` gives back the held
    files and threads.
    """

    SOURCES = ("sysfs", "meminfo", "ksmd")

    def __init__(
        self,
        roots: Roots,
        page_size: int | None = None,
        processes: ProcessOptions | None = None,
        *,
        sample_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        clock_ticks: int | None = None,
        sweep_deadline: float = SWEEP_DEADLINE,
        process_fields: tuple[ProcessField, ...] = PROCESS_FIELDS,
        process_labels: tuple[ProcessLabel, ...] = LABELS,
        ksm_files: Declared = DECLARED,
        tuner_state_file: str | None = None,
    ) -> None:
        self.roots = roots
        self.tuner_state_file = tuner_state_file
        self.page_size = page_size or os.sysconf("SC_PAGE_SIZE")
        self.ksm_files = ksm_files
        self.clock = clock
        options = processes or ProcessOptions()
        self.processes = (
            ProcessReader(roots.procfs, options, process_fields, process_labels)
            if options.enabled
            else None
        )
        sources = (*self.SOURCES, "process") if self.processes else self.SOURCES
        self.stats = SourceStats(sources)
        self.sysfs = HeldKsmSysfs(roots.sysfs, ksm_files)
        self.ksmd = KsmdLocator(roots.procfs, clock, clock_ticks)
        boot = "/boot" if os.path.realpath(roots.procfs) == "/proc" else None
        self.kernel_hz: KernelHz = read_kernel_hz(roots.procfs, boot)
        self.kernel_release: str | None = read_release(roots.procfs)
        self.sampler = CostSampler(self.read_scan, sample_interval)
        self.sweep = OffLoop(self.sweep_processes, sweep_deadline)
        self.last: HostReading | None = None  # the latest whole reading: the status view's
        self.last_at: float | None = None  # when it was taken, on `clock`
        # A walk of every process that only the status view needs: once a sampling interval,
        # and in the background for views that reload within TUNER_PROCESSES_STALE_SECONDS.
        self.tuner_processes = Kept(
            self._read_tuner_processes,
            sample_interval,
            clock,
            stale_seconds=max(sample_interval, TUNER_PROCESSES_STALE_SECONDS),
        )
        self.memory_kept = MemoryKept(MEMORY_KEPT_SECONDS, clock)

    def timed(self, source: str, read: Callable[[], R]) -> R:
        started = time.perf_counter()
        reading = read()
        self.stats.record(source, time.perf_counter() - started, reading.problems)
        return reading

    def read_scan(self) -> ScanReading:
        """What the sampler reads each tick: a few KSM files, opened afresh, and ksmd."""
        return read_scan(self.roots.sysfs, self.ksmd, self.clock, self.ksm_files)

    def read_qemu_processes(self) -> tuple[QemuProcess, ...] | None:
        """What the other tuners count as QEMU's memory: read by a scrape only to explain a
        process that merges little where a tuner runs (it reads a file of every process), and
        at most once a sampling interval."""
        return self.tuner_processes().qemu

    def read_rival_tuners(self) -> list[tuple[int, str]]:
        """(pid, name) of the other tuners running, read at most once a sampling interval."""
        return self.tuner_processes().rivals

    def _read_tuner_processes(self) -> TunerProcesses:
        names = read_process_names(self.roots.procfs)
        qemu = qemu_processes_among(self.roots.procfs, names, sees_hidden=os.geteuid() == 0)
        return TunerProcesses(qemu, rivals_among(names))

    def sweep_processes(self) -> Timed | None:
        """The sweep and how long it took; the caller records it (it may run in a thread)."""
        if self.processes is None:
            return None
        started = time.perf_counter()
        sample = self.processes.read()
        return sample, time.perf_counter() - started

    def read(self) -> HostReading:
        """Every source but the per-process sweep."""
        sysfs = self.timed("sysfs", self.sysfs.read)
        meminfo = self.timed("meminfo", lambda: read_meminfo(self.roots.meminfo))
        ksmd = self.timed("ksmd", self.ksmd.read) if sysfs.snapshot.available else None
        tuner = None if self.tuner_state_file is None else read_record(self.tuner_state_file)
        return HostReading(sysfs, meminfo, None, ksmd, tuner)

    def read_all(self) -> HostReading:
        """Every source, the per-process sweep inline: for `status` and `tune`, which have no
        event loop."""
        reading = replace(self.read(), processes=self.record_sweep(self.sweep_processes()))
        return self.keep(reading)

    async def read_async(self) -> HostReading:
        """The server's read: the sweep runs in a worker thread, the rest inline."""
        if self.processes is None:
            return self.keep(self.read())
        running = self.sweep.start()
        sample = self.read()
        processes = self.record_sweep(await self.sweep.finish(running))
        if processes is None:
            reason = f"the per-process sweep is still running after {self.sweep.deadline:g} s"
            problem = Problem(self.roots.procfs, "", reason)
            self.stats.record("process", self.sweep.deadline, (problem,))
        reading = replace(sample, processes=processes)
        if processes is not None and any(
            merges_little(p.stat) for p in processes.selection.own
        ):  # smaps and friends: off the event loop
            return self.keep(await asyncio.to_thread(self.explain_merging_little, reading))
        return self.keep(replace(reading, explanations={} if processes is not None else None))

    def keep(self, reading: HostReading) -> HostReading:
        """The latest whole reading, and when, for the status view."""
        self.last, self.last_at = reading, self.clock()
        return reading

    def fresh(self, seconds: float) -> HostReading | None:
        """The latest whole reading if it is younger than `seconds`."""
        last, at = self.last, self.last_at
        if last is None or at is None or self.clock() - at >= seconds:
            return None
        return last

    def record_sweep(self, timed: Timed | None) -> ProcessReading | None:
        if timed is None:
            return None
        sample, seconds = timed
        self.stats.record("process", seconds, sample.problems)
        return sample

    def explainer(self, reading: HostReading, kept: MemoryKept | None = None) -> Explainer:
        """Explains processes against `reading` (reading/why.py); the tuners that run here
        come from the walk kept for a sampling interval, where a cause asks for them."""
        ksm = reading.sysfs.snapshot

        def tuners() -> tuple[TunerAtWork, ...]:
            meminfo = reading.meminfo.meminfo
            return tuners_at_work(ksm, meminfo, self.read_rival_tuners(), self.read_qemu_processes)

        return Explainer.for_host(self.roots, ksm, self.page_size, tuners, kept=kept)

    def explain_merging_little(
        self,
        reading: HostReading,
        among: Iterable[ProcessKsm] | None = None,
        limit: int | None = None,
    ) -> HostReading:
        """The reading with an explanation for each process that merges little
        (derive/causes.py's `merges_little`) among `among` (by default those with series of
        their own), at most `limit` of them, those ksmd tracks most pages of first; nothing
        more is read where every one merges well."""
        processes = reading.processes
        if processes is None:
            return reading
        candidates = processes.selection.own if among is None else among
        little = sorted(
            (p for p in candidates if merges_little(p.stat)),
            key=lambda p: -(p.stat.rmap_items or 0),
        )[:limit]
        self.memory_kept.forget_all_but({p.pid for p in little})
        if not little:
            return replace(reading, explanations={})
        explainer = self.explainer(reading, self.memory_kept)
        explained = {p.pid: explainer.explain(p.pid, p.stat) for p in little}
        return replace(reading, explanations=explained)

    def explain_unregistered_guests(self, reading: HostReading) -> HostReading:
        """The reading with an explanation for each QEMU process that is not registered with
        KSM (from the walk kept for a sampling interval): a guest that merges nothing."""
        processes = reading.processes
        qemu = self.read_qemu_processes()
        if processes is None or not qemu:
            return reading
        registered = {p.pid for p in processes.sweep.registered}
        guests = [q.pid for q in qemu if q.pid not in registered]
        if not guests:
            return reading
        explainer = self.explainer(reading)
        explained = dict(reading.explanations or {})
        explained.update((pid, explainer.explain(pid)) for pid in guests)
        return replace(reading, explanations=explained)

    def identity(self, reading: HostReading, pid: int) -> ProcessIdentity:
        """Who a process is: from the sweep where it has series of its own, else read now."""
        processes = reading.processes
        if processes is not None and pid in processes.identities:
            return processes.identities[pid]
        labels = self.processes.labels if self.processes is not None else LABELS
        return read_identity(self.roots.procfs, pid, labels=labels)

    def close(self) -> None:
        self.sysfs.close()
        if self.processes is not None:
            self.processes.close()

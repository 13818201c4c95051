"""One collection: read every source, derive, and turn the result into metric families."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from prometheus_client.core import Metric

from ksm_exporter.collector.cost_families import cost_families
from ksm_exporter.collector.cost_sampler import CostSampler
from ksm_exporter.collector.ksm_families import savings_families, sysfs_families
from ksm_exporter.collector.process_families import ProcessSample
from ksm_exporter.collector.processes import ProcessCollector, ProcessOptions
from ksm_exporter.collector.self_metrics import SourceStats
from ksm_exporter.derive.savings import derive_savings
from ksm_exporter.sources.kernel_file import Problem
from ksm_exporter.sources.ksmd import KsmdLocator, KsmdReading
from ksm_exporter.sources.meminfo import MeminfoReading, read_mem_total
from ksm_exporter.sources.sysfs import HeldKsmSysfs, SysfsReading

# How long a scrape waits for the per-process sweep: far above its cost on any real host
# (about 10 µs a process), well within Prometheus' default 10 s scrape timeout.
SWEEP_DEADLINE = 5.0


class Reading(Protocol):
    @property
    def problems(self) -> tuple[Problem, ...]: ...


R = TypeVar("R", bound=Reading)


@dataclass(frozen=True, slots=True)
class Roots:
    """Where the kernel's filesystems are mounted; tests point these at fixture trees."""

    sysfs: str = "/sys"
    procfs: str = "/proc"


@dataclass(frozen=True, slots=True)
class Sample:
    """Everything one collection read."""

    sysfs: SysfsReading
    meminfo: MeminfoReading
    processes: ProcessSample | None = None  # None when the per-process sweep is off
    ksmd: KsmdReading | None = None  # None where the kernel has no KSM: no ksmd to look for


class KsmCollection:
    """Reads the sources and builds the metric families for one scrape.

    The sysfs, meminfo and ksmd reads are a few dozen small files: they run inline, as a hop
    to a worker thread costs more than the reads themselves. The per-process sweep reads a
    file per process and runs in a worker thread, alongside them. The scan-cost figures come
    from `sampler`, which the server runs in the background (`make_app`).
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
    ) -> None:
        self.roots = roots
        self.page_size = page_size or os.sysconf("SC_PAGE_SIZE")
        options = processes or ProcessOptions()
        self.processes = ProcessCollector(roots.procfs, options) if options.enabled else None
        sources = (*self.SOURCES, "process") if self.processes else self.SOURCES
        self.stats = SourceStats(sources)
        self.sysfs = HeldKsmSysfs(roots.sysfs)
        self.collections = 0
        self.ksmd = KsmdLocator(roots.procfs, clock)
        self.sampler = CostSampler(roots.sysfs, self.ksmd, sample_interval, clock, clock_ticks)
        self.sweep_deadline = sweep_deadline
        self._sweeping: asyncio.Future[tuple[ProcessSample, float] | None] | None = None

    def timed(self, source: str, read: Callable[[], R]) -> R:
        started = time.perf_counter()
        reading = read()
        self.stats.record(source, time.perf_counter() - started, reading.problems)
        return reading

    def read_sample(self) -> Sample:
        sysfs, meminfo = self.read_inline()
        processes = self.record_processes(self.read_processes())
        return Sample(sysfs, meminfo, processes, self.read_ksmd(sysfs))

    def read_ksmd(self, sysfs: SysfsReading) -> KsmdReading | None:
        if not sysfs.snapshot.available:
            return None
        return self.timed("ksmd", self.ksmd.read)

    def read_inline(self) -> tuple[SysfsReading, MeminfoReading]:
        """The small reads that run on the caller's thread."""
        sysfs = self.timed("sysfs", self.sysfs.read)
        meminfo = self.timed("meminfo", lambda: read_mem_total(self.roots.procfs))
        return sysfs, meminfo

    def read_processes(self) -> tuple[ProcessSample, float] | None:
        """The sweep and how long it took; the caller records it (the sweep may run in a thread)."""
        if self.processes is None:
            return None
        started = time.perf_counter()
        sample = self.processes.read()
        return sample, time.perf_counter() - started

    def record_processes(self, read: tuple[ProcessSample, float] | None) -> ProcessSample | None:
        if read is None:
            return None
        sample, seconds = read
        self.stats.record("process", seconds, sample.problems)
        return sample

    def families(self, sample: Sample) -> list[Metric]:
        ksm = sample.sysfs.snapshot
        savings = derive_savings(ksm, self.page_size, sample.meminfo.mem_total_bytes)
        metrics: list[Metric] = []
        metrics.extend(sysfs_families(ksm))
        metrics.extend(savings_families(savings, self.page_size))
        if self.processes is not None and sample.processes is not None:
            metrics.extend(self.processes.families(sample.processes, self.page_size))
        ksmd = sample.ksmd.ksmd if sample.ksmd else None
        metrics.extend(cost_families(ksmd, self.sampler.cost, self.sampler.clock_ticks))
        metrics.extend(self.stats.families())
        return metrics

    def collect(self) -> Iterable[Metric]:
        """prometheus-client's Collector protocol, for the `status` command and tests."""
        self.collections += 1
        return self.families(self.read_sample())

    async def collect_async(self) -> list[Metric]:
        """The server's entry point: what may block for long goes to a worker thread."""
        self.collections += 1
        if self.processes is None:
            return self.families(self.read_sample())
        sweeping = self._start_sweep()
        sysfs, meminfo = self.read_inline()
        ksmd = self.read_ksmd(sysfs)
        processes = await self._finish_sweep(sweeping)
        return self.families(Sample(sysfs, meminfo, processes, ksmd))

    def _start_sweep(self) -> asyncio.Future[tuple[ProcessSample, float] | None] | None:
        """A sweep in a worker thread, or None while an earlier one is still stuck."""
        if self._sweeping is not None and not self._sweeping.done():
            return None
        self._sweeping = asyncio.get_running_loop().run_in_executor(None, self.read_processes)
        return self._sweeping

    async def _finish_sweep(
        self, sweeping: asyncio.Future[tuple[ProcessSample, float] | None] | None
    ) -> ProcessSample | None:
        """The sweep's sample, or None when it is not done by the deadline.

        A read of `/proc/<pid>/ksm_stat` waits for the process's memory map lock, which a
        process stuck in the kernel can hold indefinitely; the scrape then goes out without
        the per-process figures, the error is counted, and no second sweep starts until the
        stuck one returns.
        """
        if sweeping is not None:
            try:
                read = await asyncio.wait_for(asyncio.shield(sweeping), self.sweep_deadline)
            except TimeoutError:
                pass
            else:
                return self.record_processes(read)
        reason = f"the per-process sweep is still running after {self.sweep_deadline:g} s"
        self.stats.record("process", self.sweep_deadline, (Problem(self.roots.procfs, "", reason),))
        return None

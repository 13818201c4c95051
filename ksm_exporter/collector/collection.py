"""One collection: read every source, derive, and turn the result into metric families.

A scrape, start to end: `collect_async` below reads the sources (ksm_exporter/sources), the
families come from derive's figures in `families`, and the server encodes them
(ksm_exporter/server/exposition.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol, TypeVar

from prometheus_client.core import Metric

from ksm_exporter.collector.cost_families import cost_families
from ksm_exporter.collector.cost_sampler import CostSampler
from ksm_exporter.collector.ksm_families import savings_families, sysfs_families
from ksm_exporter.collector.off_loop import OffLoop
from ksm_exporter.collector.process_families import process_families, sweep_families
from ksm_exporter.collector.processes import ProcessOptions, ProcessReader
from ksm_exporter.collector.self_metrics import SourceStats
from ksm_exporter.collector.tuning_families import tuning_families
from ksm_exporter.derive.process_selection import ProcessReading
from ksm_exporter.derive.savings import derive_savings
from ksm_exporter.derive.tuning import TuningOptions, advise, host_now
from ksm_exporter.sources.host import Host
from ksm_exporter.sources.kernel_file import Problem
from ksm_exporter.sources.ksm_files import DECLARED, Declared
from ksm_exporter.sources.ksm_stat import PROCESS_FIELDS, ProcessField
from ksm_exporter.sources.ksmd import KsmdReading
from ksm_exporter.sources.meminfo import MeminfoReading
from ksm_exporter.sources.process_identity import LABELS, ProcessLabel
from ksm_exporter.sources.roots import Roots
from ksm_exporter.sources.sysfs import SysfsReading

# How long a scrape waits for the per-process sweep: far above its cost on any real host
# (about 10 µs a process), well within Prometheus' default 10 s scrape timeout.
SWEEP_DEADLINE = 5.0


class HasProblems(Protocol):
    @property
    def problems(self) -> tuple[Problem, ...]: ...


R = TypeVar("R", bound=HasProblems)
Timed = tuple[ProcessReading, float]  # a sweep and how long it took


@dataclass(frozen=True, slots=True)
class HostReading:
    """Everything one collection read."""

    sysfs: SysfsReading
    meminfo: MeminfoReading
    processes: ProcessReading | None = None  # None when the per-process sweep is off
    ksmd: KsmdReading | None = None  # None where the kernel has no KSM: no ksmd to look for


class KsmCollection:
    """Reads the host (sources/host.py's `Host`, plus the per-process sweep) and builds the
    metric families for one scrape.

    The sysfs, meminfo and ksmd reads are a few dozen small files: they run inline, as a hop
    to a worker thread costs more than the reads themselves. The per-process sweep reads a
    file per process and runs in a worker thread meanwhile. The scan-cost figures come from
    `sampler`, which the server runs in the background (`make_app`). `close()` gives back
    the held files and threads.
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
        tuning: TuningOptions | None = None,
        process_fields: tuple[ProcessField, ...] = PROCESS_FIELDS,
        process_labels: tuple[ProcessLabel, ...] = LABELS,
        ksm_files: Declared = DECLARED,
    ) -> None:
        self.roots = roots
        self.page_size = page_size or os.sysconf("SC_PAGE_SIZE")
        options = processes or ProcessOptions()
        self.processes = (
            ProcessReader(roots.procfs, options, process_fields, process_labels)
            if options.enabled
            else None
        )
        sources = (*self.SOURCES, "process") if self.processes else self.SOURCES
        self.stats = SourceStats(sources)
        self.host = Host(roots, ksm_files, clock, clock_ticks)
        self.sampler = CostSampler(self.host.read_scan, sample_interval)
        self.sweep = OffLoop(self.sweep_processes, sweep_deadline)
        self.tuning = tuning or TuningOptions()
        self.last: HostReading | None = None  # what the latest collection read: the status view's

    def timed(self, source: str, read: Callable[[], R]) -> R:
        started = time.perf_counter()
        reading = read()
        self.stats.record(source, time.perf_counter() - started, reading.problems)
        return reading

    def sweep_processes(self) -> Timed | None:
        """The sweep and how long it took; the caller records it (it may run in a thread)."""
        if self.processes is None:
            return None
        started = time.perf_counter()
        sample = self.processes.read()
        return sample, time.perf_counter() - started

    def read(self) -> HostReading:
        """Every source but the per-process sweep."""
        host = self.host
        sysfs = self.timed("sysfs", host.read_sysfs)
        meminfo = self.timed("meminfo", host.read_meminfo)
        ksmd = self.timed("ksmd", host.read_ksmd) if sysfs.snapshot.available else None
        return HostReading(sysfs, meminfo, None, ksmd)

    def read_all(self) -> HostReading:
        """Every source, the per-process sweep inline: for `status`, which has no event loop."""
        reading = self.read()
        return replace(reading, processes=self.record_sweep(self.sweep_processes()))

    def record_sweep(self, timed: Timed | None) -> ProcessReading | None:
        if timed is None:
            return None
        sample, seconds = timed
        self.stats.record("process", seconds, sample.problems)
        return sample

    def families(self, sample: HostReading) -> list[Metric]:
        ksm = sample.sysfs.snapshot
        savings = derive_savings(ksm, self.page_size, sample.meminfo.mem_total_bytes)
        metrics: list[Metric] = []
        metrics.extend(sysfs_families(ksm, self.host.ksm_files))
        metrics.extend(savings_families(savings, self.page_size))
        if self.processes is not None and sample.processes is not None:
            reader = self.processes
            metrics.extend(
                process_families(
                    sample.processes, reader.options.labels, self.page_size, reader.fields
                )
            )
            metrics.extend(sweep_families(sample.processes.sweep))
        ksmd = sample.ksmd.ksmd if sample.ksmd else None
        metrics.extend(cost_families(ksmd, self.sampler.cost))
        if ksm.available:
            host = host_now(ksm, sample.processes, self.host.kernel_hz)
            metrics.extend(tuning_families(advise(self.sampler.cost, host, self.tuning)))
        metrics.extend(self.stats.families())
        return metrics

    async def collect_async(self) -> list[Metric]:
        """The server's entry point: the sweep runs in a worker thread, the rest inline."""
        if self.processes is None:
            self.last = self.read()
            return self.families(self.last)
        running = self.sweep.start()
        sample = self.read()
        processes = self.record_sweep(await self.sweep.finish(running))
        if processes is None:
            reason = f"the per-process sweep is still running after {self.sweep.deadline:g} s"
            problem = Problem(self.roots.procfs, "", reason)
            self.stats.record("process", self.sweep.deadline, (problem,))
        self.last = replace(sample, processes=processes)
        return self.families(self.last)

    def close(self) -> None:
        self.host.close()
        if self.processes is not None:
            self.processes.close()

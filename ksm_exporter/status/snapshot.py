"""Everything `status` shows, read once, plus ksmd watched over a short window."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ksm_exporter.collector.collection import KsmCollection, Roots
from ksm_exporter.collector.process_families import ProcessSample
from ksm_exporter.collector.processes import ProcessOptions
from ksm_exporter.derive.savings import Savings, derive_savings
from ksm_exporter.derive.scan_cost import CostSample, ScanCost, cpu_ratio
from ksm_exporter.sources.kernel_file import Problem
from ksm_exporter.sources.sysfs import KsmSysfs, ksm_dir

# How often full_scans and ksmd are sampled during the window: often enough to time full
# scans that complete within it, still only two small reads a tick.
WINDOW_STEP_SECONDS = 0.1


class KsmUnreadable(Exception):
    """KSM cannot be read at all: the one sentence `status` exits with."""


@dataclass(frozen=True, slots=True)
class CpuWindow:
    """ksmd and full_scans at the start and end of the window, and what came of them."""

    first: CostSample
    cost: ScanCost
    clock_ticks: int

    @property
    def seconds(self) -> float:
        last = self.cost.last
        return 0.0 if last is None else last.at - self.first.at

    @property
    def cpu_ratio(self) -> float | None:
        last = self.cost.last
        return None if last is None else cpu_ratio(self.first, last, self.clock_ticks)

    @property
    def full_scans_completed(self) -> int | None:
        last = self.cost.last
        if last is None or last.full_scans is None or self.first.full_scans is None:
            return None
        return last.full_scans - self.first.full_scans

    @property
    def ksmd_cpu_seconds(self) -> float | None:
        last = self.cost.last
        if last is None or last.ksmd_ticks is None:
            return None
        return last.ksmd_ticks / self.clock_ticks


@dataclass(frozen=True, slots=True)
class Snapshot:
    ksm: KsmSysfs
    savings: Savings
    mem_total_bytes: int | None
    page_size: int
    window: CpuWindow
    processes: ProcessSample | None
    problems: tuple[Problem, ...]


def take_snapshot(
    roots: Roots,
    window_seconds: float = 1.0,
    top: int = 10,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    page_size: int | None = None,
    clock_ticks: int | None = None,
) -> Snapshot:
    """Raises KsmUnreadable where the kernel's KSM directory cannot be read."""
    collection = KsmCollection(
        roots,
        page_size,
        ProcessOptions(limit=top),
        clock=clock,
        clock_ticks=clock_ticks,
    )
    try:
        sample = collection.read_sample()
    finally:
        if collection.processes is not None:
            collection.processes.close()
    ksm = sample.sysfs.snapshot
    if not ksm.available:
        raise KsmUnreadable(no_ksm_sentence(roots.sysfs, sample.sysfs.problems))
    window = watch_ksmd(collection, window_seconds, clock, sleep)
    problems = (
        *sample.sysfs.problems,
        *sample.meminfo.problems,
        *(sample.ksmd.problems if sample.ksmd else ()),
        *(sample.processes.problems if sample.processes else ()),
    )
    mem_total = sample.meminfo.mem_total_bytes
    return Snapshot(
        ksm=ksm,
        savings=derive_savings(ksm, collection.page_size, mem_total),
        mem_total_bytes=mem_total,
        page_size=collection.page_size,
        window=window,
        processes=sample.processes,
        problems=problems,
    )


def watch_ksmd(
    collection: KsmCollection,
    seconds: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> CpuWindow:
    sampler = collection.sampler
    first = sampler.tick().last
    assert first is not None
    deadline = first.at + seconds
    while (remaining := deadline - clock()) > 0:
        sleep(min(WINDOW_STEP_SECONDS, remaining))
        sampler.tick()
    return CpuWindow(first, sampler.cost, sampler.clock_ticks)


def no_ksm_sentence(sysfs_root: str, problems: tuple[Problem, ...]) -> str:
    directory = ksm_dir(sysfs_root)
    if problems:
        return f"cannot read {directory}: {problems[0].reason}."
    return f"this kernel has no KSM: {directory} does not exist."

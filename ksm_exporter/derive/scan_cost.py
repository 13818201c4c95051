"""What scanning costs, from successive samples of `full_scans`, `run` and ksmd's CPU time.

A full scan is seen to complete when `full_scans` grows between two samples, so its end is
known only to within one sampling interval. Its duration is the time KSM spent running
(`run` = 1; an interval in which it started or stopped counts half) since the previous
observed completion: a maintenance stop of hours between two scans adds nothing. When
several scans complete within one interval, each is taken to have lasted the average.
`full_scans` going down (run set to 2) forgets the last completion, so the next figures
start from the next one; the last figures are kept until then, since they still describe the
last complete scan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from ksm_exporter.derive.savings import saved_pages
from ksm_exporter.sources.scan_state import CostSample

NANOSECONDS = 1_000_000_000
RUNNING = 1  # `run` while ksmd merges; 5 (with the memory-offline bit) pauses it
KEPT_SCANS = 16  # completed scans remembered for the tuning model


@dataclass(frozen=True, slots=True)
class FullScan:
    """One observed full scan (the average of those completed in one sampling interval)."""

    at: float  # when its completion was seen
    running_seconds: float
    cpu_seconds: float | None
    pages_scanned: float | None  # pages_scanned per scan, where the kernel counts them
    pages_to_scan: int | None  # the setting, when it held for the whole scan; else None
    sleep_millisecs: int | None
    saved_pages: int | None  # at the end of the scan
    general_profit: int | None


@dataclass(frozen=True, slots=True)
class Mark:
    """Totals at one instant, to subtract from later totals."""

    sample: CostSample
    running_seconds: float
    settings: tuple[int | None, int | None] | None  # None once they changed since the mark


@dataclass(frozen=True, slots=True)
class ScanCost:
    """The figures so far, and what the next sample is compared with."""

    last: CostSample | None = None
    running_seconds: float = 0.0  # time with run = 1 seen so far
    completion: Mark | None = None  # when the last full scan was seen to end
    cpu_ratio: float | None = None
    full_scan_seconds: float | None = None
    cpu_seconds_per_full_scan: float | None = None
    scans: tuple[FullScan, ...] = ()  # the most recent observed full scans, oldest first


def cpu_ns_between(earlier: CostSample, later: CostSample) -> int | None:
    """ksmd CPU nanoseconds spent between two samples, when both saw the same ksmd."""
    if (
        earlier.ksmd_cpu_ns is None
        or later.ksmd_cpu_ns is None
        or earlier.ksmd_pid != later.ksmd_pid
        or later.ksmd_cpu_ns < earlier.ksmd_cpu_ns
    ):
        return None
    return later.ksmd_cpu_ns - earlier.ksmd_cpu_ns


def cpu_ratio(earlier: CostSample, later: CostSample) -> float | None:
    """Share of one CPU ksmd used between two samples."""
    spent = cpu_ns_between(earlier, later)
    if spent is None or later.at <= earlier.at:
        return None
    return spent / (NANOSECONDS * (later.at - earlier.at))


def running_between(earlier: CostSample, later: CostSample) -> float:
    """Seconds KSM ran between two samples: all of them when it ran at both, half when it
    started or stopped in between (the best guess, off by half an interval at most)."""
    if later.at <= earlier.at:
        return 0.0
    ends_running = (earlier.run == RUNNING) + (later.run == RUNNING)
    return (later.at - earlier.at) * ends_running / 2


def settings_of(sample: CostSample) -> tuple[int | None, int | None]:
    return sample.number("pages_to_scan"), sample.number("sleep_millisecs")


def per_scan(
    start: CostSample, end: CostSample, scans: int, of: Callable[[CostSample], int | None]
) -> float | None:
    first, last = of(start), of(end)
    if first is None or last is None or last < first:
        return None
    return (last - first) / scans


def observe(mark: Mark, sample: CostSample, running: float, scans: int) -> FullScan:
    """The scan(s) that ended between `mark` and `sample`."""
    spent = cpu_ns_between(mark.sample, sample)
    steady = mark.settings == settings_of(sample)
    return FullScan(
        at=sample.at,
        running_seconds=(running - mark.running_seconds) / scans,
        cpu_seconds=None if spent is None else spent / (NANOSECONDS * scans),
        pages_scanned=per_scan(mark.sample, sample, scans, lambda s: s.number("pages_scanned")),
        pages_to_scan=sample.number("pages_to_scan") if steady else None,
        sleep_millisecs=sample.number("sleep_millisecs") if steady else None,
        saved_pages=None if sample.ksm is None else saved_pages(sample.ksm),
        general_profit=sample.number("general_profit"),
    )


def advance(cost: ScanCost, sample: CostSample) -> ScanCost:
    """The figures after one more sample."""
    last = cost.last
    if last is None:
        return replace(cost, last=sample)
    running = cost.running_seconds + running_between(last, sample)
    completion = cost.completion
    if completion is not None and completion.settings != settings_of(sample):
        completion = replace(completion, settings=None)
    updated = replace(cost, last=sample, running_seconds=running, cpu_ratio=cpu_ratio(last, sample))
    if sample.full_scans is None or last.full_scans is None:
        completion = None if sample.full_scans is None else completion
    elif sample.full_scans < last.full_scans:
        completion = None  # reset by run=2: no known start for the scan under way
    elif sample.full_scans > last.full_scans:
        if completion is not None and completion.sample.full_scans is not None:
            scans = sample.full_scans - completion.sample.full_scans
            scan = observe(completion, sample, running, scans)
            updated = replace(
                updated,
                full_scan_seconds=scan.running_seconds,
                cpu_seconds_per_full_scan=scan.cpu_seconds,
                scans=(*cost.scans, scan)[-KEPT_SCANS:],
            )
        completion = Mark(sample, running, settings_of(sample))
    return replace(updated, completion=completion)

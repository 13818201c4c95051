"""What scanning costs, from successive samples of `full_scans` and ksmd's CPU time.

A full scan is seen to complete when `full_scans` grows between two samples, so its end is
known only to within one sampling interval; a duration is the time between two such
observed completions. When several scans complete within one interval, each is taken to
have lasted the average: elapsed time since the last observed completion divided by the
scans completed since. `full_scans` going down (run set to 2) forgets the last completion,
so the next figures start from the next one; the last figures are kept until then, since
they still describe the last complete scan.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CostSample:
    """One sampler tick. None where the file or the thread was not there."""

    at: float  # monotonic seconds
    full_scans: int | None
    ksmd_pid: int | None = None
    ksmd_ticks: int | None = None  # utime + stime in clock ticks


@dataclass(frozen=True, slots=True)
class ScanCost:
    """The figures so far, and what the next sample is compared with."""

    last: CostSample | None = None
    completion: CostSample | None = None  # sample at which the last full scan was seen to end
    cpu_ratio: float | None = None
    full_scan_seconds: float | None = None
    cpu_seconds_per_full_scan: float | None = None


def ticks_between(earlier: CostSample, later: CostSample) -> int | None:
    """ksmd CPU clock ticks spent between two samples, when both saw the same ksmd."""
    if (
        earlier.ksmd_ticks is None
        or later.ksmd_ticks is None
        or earlier.ksmd_pid != later.ksmd_pid
        or later.ksmd_ticks < earlier.ksmd_ticks
    ):
        return None
    return later.ksmd_ticks - earlier.ksmd_ticks


def cpu_ratio(earlier: CostSample, later: CostSample, clock_ticks: int) -> float | None:
    """Share of one CPU ksmd used between two samples."""
    ticks = ticks_between(earlier, later)
    if ticks is None or later.at <= earlier.at:
        return None
    return ticks / (clock_ticks * (later.at - earlier.at))  # one division: 30/100 is 0.3


def advance(cost: ScanCost, sample: CostSample, clock_ticks: int) -> ScanCost:
    """The figures after one more sample."""
    last = cost.last
    ratio = None if last is None else cpu_ratio(last, sample, clock_ticks)
    completion = cost.completion
    seconds, cpu_per_scan = cost.full_scan_seconds, cost.cpu_seconds_per_full_scan
    if sample.full_scans is None or last is None or last.full_scans is None:
        completion = None if sample.full_scans is None else completion
    elif sample.full_scans < last.full_scans:
        completion = None  # reset by run=2: no known start for the scan under way
    elif sample.full_scans > last.full_scans:
        if completion is not None and completion.full_scans is not None:
            scans = sample.full_scans - completion.full_scans
            seconds = (sample.at - completion.at) / scans
            ticks = ticks_between(completion, sample)
            cpu_per_scan = None if ticks is None else ticks / (clock_ticks * scans)
        completion = sample
    return ScanCost(
        last=sample,
        completion=completion,
        cpu_ratio=ratio,
        full_scan_seconds=seconds,
        cpu_seconds_per_full_scan=cpu_per_scan,
    )

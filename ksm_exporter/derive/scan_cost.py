"""What scanning costs, from successive samples of `full_scans`, `run` and ksmd's CPU time.

A full scan is seen to complete when `full_scans` grows between two samples, so its end is
known only to within one sampling interval. Its duration is the time KSM spent running
(`run` = 1; an interval in which it started or stopped counts half) since the previous
observed completion: a maintenance stop of hours between two scans adds nothing. When
several scans complete within one interval, each is taken to have lasted the average.
`full_scans` going down (run set to 2) forgets the last completion and the trend, so the next
figures start from the next one; the last figures are kept until then, since they still
describe the last complete scan.

The tuning model needs the CPU per scan at more than one `pages_to_scan`: `settled` keeps the
latest few scans of each of the last few settings, which outlive the last 32 scans.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from ksm_exporter.derive.savings import memory_profit_bytes, saved_pages
from ksm_exporter.derive.scan_trend import GROWTH, SPAN, ScanClass, Trend, next_trend
from ksm_exporter.sources.host import ScanReading
from ksm_exporter.sources.kernel_file import NANOSECONDS
from ksm_exporter.sources.ksm_files import ksmd_scanning

KEPT_SCANS = 32  # completed scans remembered for the tuning model: 3 smart_scan cycles
KEPT_SETTINGS = 4  # distinct pages_to_scan values remembered for the fit of the cost per batch
KEPT_PER_SETTING = 27  # latest scans remembered per setting: 3 smart_scan cycles


@dataclass(frozen=True, slots=True)
class FullScan:
    """One observed full scan (the average of those completed in one sampling interval)."""

    at: float  # when its completion was seen
    full_scans: int  # the kernel's count at its end
    scans: int  # how many completed in the interval it was seen in (the figures are means)
    running_seconds: float
    cpu_seconds: float | None
    pages_scanned: float | None  # pages_scanned per scan, where the kernel counts them
    pages_to_scan: int | None  # the setting, when it held for the whole scan; else None
    sleep_millisecs: int | None
    saved_pages: int | None  # at the end of the scan
    memory_profit: int | None  # bytes at the end of the scan (derive.savings)
    run_delay_seconds: float | None = None  # ksmd waiting for a CPU (schedstat), per scan
    pages_skipped: float | None = None  # smart_scan's skipped pages per scan, where counted
    interval: float = 0.0  # seconds between the samples that saw it end


def raw_state(scans: Sequence[FullScan]) -> ScanClass | None:
    """The class of the latest scan, None until one from SPAN full scans before is known."""
    if not scans:
        return None
    last = scans[-1]
    base = next((s for s in reversed(scans[:-1]) if s.full_scans <= last.full_scans - SPAN), None)
    if base is None or last.saved_pages is None or base.saved_pages is None:
        return None
    if last.memory_profit is not None and last.memory_profit <= 0:
        return "unprofitable"
    grew = last.saved_pages - base.saved_pages > GROWTH * base.saved_pages
    return "backlog" if grew else "steady"


@dataclass(frozen=True, slots=True)
class Mark:
    """Totals at one instant, to subtract from later totals."""

    sample: ScanReading
    running_seconds: float
    settings: tuple[int | None, int | None] | None  # None once they changed since the mark


@dataclass(frozen=True, slots=True)
class ScanCost:
    """The figures so far, and what the next sample is compared with."""

    last: ScanReading | None = None
    running_seconds: float = 0.0  # time with run = 1 seen so far
    completion: Mark | None = None  # when the last full scan was seen to end
    cpu_ratio: float | None = None
    full_scan_seconds: float | None = None
    cpu_seconds_per_full_scan: float | None = None
    scans: tuple[FullScan, ...] = ()  # the most recent observed full scans, oldest first
    settled: tuple[FullScan, ...] = ()  # the latest scans of each recent setting, oldest first
    trend: Trend = field(default_factory=Trend)  # backlog, steady or unprofitable, confirmed


def _ksmd_counter_between(earlier: int | None, later: int | None, same_ksmd: bool) -> int | None:
    """How far one of ksmd's schedstat counters moved, when both samples saw the same ksmd
    and the counter did not go back (a new ksmd starts from 0)."""
    if earlier is None or later is None or not same_ksmd or later < earlier:
        return None
    return later - earlier


def cpu_ns_between(earlier: ScanReading, later: ScanReading) -> int | None:
    """ksmd CPU nanoseconds spent between two samples, when both saw the same ksmd."""
    return _ksmd_counter_between(
        earlier.ksmd_cpu_ns, later.ksmd_cpu_ns, earlier.ksmd_pid == later.ksmd_pid
    )


def run_delay_ns_between(earlier: ScanReading, later: ScanReading) -> int | None:
    """Nanoseconds ksmd waited for a CPU between two samples, when both saw the same ksmd."""
    return _ksmd_counter_between(
        earlier.ksmd_run_delay_ns, later.ksmd_run_delay_ns, earlier.ksmd_pid == later.ksmd_pid
    )


def cpu_ratio(earlier: ScanReading, later: ScanReading) -> float | None:
    """Share of one CPU ksmd used between two samples."""
    spent = cpu_ns_between(earlier, later)
    if spent is None or later.at <= earlier.at:
        return None
    return spent / (NANOSECONDS * (later.at - earlier.at))


def running_between(earlier: ScanReading, later: ScanReading) -> float:
    """Seconds KSM ran between two samples: all of them when it ran at both, half when it
    started or stopped in between (the best guess, off by half an interval at most)."""
    if later.at <= earlier.at:
        return 0.0
    ends_running = ksmd_scanning(earlier.run) + ksmd_scanning(later.run)
    return (later.at - earlier.at) * ends_running / 2


def settings_of(sample: ScanReading) -> tuple[int | None, int | None]:
    return sample.number("pages_to_scan"), sample.number("sleep_millisecs")


def per_scan(
    start: ScanReading, end: ScanReading, scans: int, of: Callable[[ScanReading], int | None]
) -> float | None:
    first, last = of(start), of(end)
    if first is None or last is None or last < first:
        return None
    return (last - first) / scans


def observe(
    mark: Mark, sample: ScanReading, running: float, scans: int, interval: float = 0.0
) -> FullScan:
    """The scan(s) that ended between `mark` and `sample`, with the settings that held
    throughout (None when they changed before the last interval)."""
    spent = cpu_ns_between(mark.sample, sample)
    delay = run_delay_ns_between(mark.sample, sample)
    pages_to_scan, sleep_millisecs = mark.settings or (None, None)
    assert sample.full_scans is not None
    return FullScan(
        at=sample.at,
        full_scans=sample.full_scans,
        scans=scans,
        running_seconds=(running - mark.running_seconds) / scans,
        cpu_seconds=None if spent is None else spent / (NANOSECONDS * scans),
        pages_scanned=per_scan(mark.sample, sample, scans, lambda s: s.number("pages_scanned")),
        pages_to_scan=pages_to_scan,
        sleep_millisecs=sleep_millisecs,
        saved_pages=None if sample.ksm is None else saved_pages(sample.ksm),
        memory_profit=None
        if sample.ksm is None
        else memory_profit_bytes(sample.ksm, sample.page_size),
        run_delay_seconds=None if delay is None else delay / (NANOSECONDS * scans),
        pages_skipped=per_scan(mark.sample, sample, scans, lambda s: s.number("pages_skipped")),
        interval=interval,
    )


def advance(cost: ScanCost, sample: ScanReading) -> ScanCost:
    """The figures after one more sample."""
    last = cost.last
    if last is None:
        return replace(cost, last=sample)
    running = cost.running_seconds + running_between(last, sample)
    # Compared with the sample before: a change seen together with a completion was made
    # as the scan ended (the kernel's advisor writes pages_to_scan then), not during it.
    completion = cost.completion
    if completion is not None and completion.settings != settings_of(last):
        completion = replace(completion, settings=None)
    updated = replace(cost, last=sample, running_seconds=running, cpu_ratio=cpu_ratio(last, sample))
    if sample.full_scans is None or last.full_scans is None:
        completion = None if sample.full_scans is None else completion
    elif sample.full_scans < last.full_scans:
        # Reset by run=2 (unmerge_and_remove_all_rmap_items() sets ksm_scan.seqnr to 0):
        # no known start for the scan under way, and the scans before unmerged memory that
        # is merged again from nothing: the trend starts afresh from the next scans.
        completion = None
        updated = replace(updated, scans=(), trend=Trend())
    elif sample.full_scans > last.full_scans:
        if completion is not None and completion.sample.full_scans is not None:
            scans = sample.full_scans - completion.sample.full_scans
            scan = observe(completion, sample, running, scans, sample.at - last.at)
            kept = (*cost.scans, scan)[-KEPT_SCANS:]
            updated = replace(
                updated,
                full_scan_seconds=scan.running_seconds,
                cpu_seconds_per_full_scan=scan.cpu_seconds,
                scans=kept,
                settled=settle(cost.settled, scan),
                trend=next_trend(cost.trend, raw_state(kept)),
            )
        completion = Mark(sample, running, settings_of(sample))
    return replace(updated, completion=completion)


def settle(settled: tuple[FullScan, ...], scan: FullScan) -> tuple[FullScan, ...]:
    """`settled` with `scan` added, when one setting held throughout it: the latest
    KEPT_PER_SETTING scans of each of the KEPT_SETTINGS most recently seen settings."""
    if scan.pages_to_scan is None:
        return settled
    recent: list[int] = []
    for kept in reversed((*settled, scan)):
        if kept.pages_to_scan not in recent and kept.pages_to_scan is not None:
            recent.append(kept.pages_to_scan)
    recent = recent[:KEPT_SETTINGS]
    kept_scans: list[FullScan] = []
    for kept in reversed((*settled, scan)):
        same = sum(1 for k in kept_scans if k.pages_to_scan == kept.pages_to_scan)
        if kept.pages_to_scan in recent and same < KEPT_PER_SETTING:
            kept_scans.append(kept)
    return tuple(reversed(kept_scans))

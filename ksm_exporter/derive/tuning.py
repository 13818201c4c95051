"""Tuning advice: what pace of scanning to set, from the measured cost of ksmd's scans.

Model of ksmd: a full scan of N pages runs in batches of p = pages_to_scan pages, each batch
costing b CPU-seconds plus c per page and followed by a sleep s, so one full scan uses
C(p) = N·c + (N/p)·b of CPU and takes T(p) = N·c + (N/p)·(b + s): a share u = C/T of one CPU.

- N: pages_scanned per full scan; where the kernel has no pages_scanned, the registered
  processes' rmap items (about one per page ksmd has looked at).
- c and b: fitted to the CPU per page of the scans seen at each recent pages_to_scan
  (CPU per page = c + b/p, a line in 1/p); b = 0 while only one setting was seen.
- s: from the measured full-scan time at the current sleep_millisecs, so it absorbs the
  kernel's rounding of the sleep to whole jiffies.

The advice: with a budget B (share of one CPU) the shortest full-scan time within it,
T_B = T(p_B) where u(p_B) = B; a backlog (saved memory still growing) gets T_B, a steady
host max(steady target, T_B), an unprofitable one run = 2: unmerge, which frees every
rmap item (unmerge_and_remove_all_rmap_items()); run = 0 only stops ksmd and frees nothing.
Nothing is written anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ksm_exporter.derive.process_selection import ProcessReading
from ksm_exporter.derive.savings import rmap_items
from ksm_exporter.derive.scan_cost import FullScan, ScanCost
from ksm_exporter.sources.ksm_files import RUN_OFFLINE, RUN_RUNNING, RUN_UNMERGE
from ksm_exporter.sources.sysfs import KsmSysfs

State = Literal["stopped", "idle", "unprofitable", "backlog", "steady"]
STATES: tuple[State, ...] = ("stopped", "idle", "unprofitable", "backlog", "steady")
NSource = Literal["pages_scanned", "rmap_items"]
CALIBRATION_SCANS = 6  # latest observed scans behind N and the calibration of s
SPREAD = 2  # how far apart pages_to_scan values must be to tell the cost per batch


@dataclass(frozen=True, slots=True)
class TuningOptions:
    cpu_budget: float = 0.1  # share of one CPU granted to ksmd
    steady_full_scan_seconds: float = 200.0  # the kernel advisor's default target


@dataclass(frozen=True, slots=True)
class HostNow:
    """What a collection knows now, besides the sampler's scans."""

    run: int | None
    pages_to_scan: int | None
    sleep_millisecs: int | None
    registered: int | None = None  # processes registered with KSM (None: not swept)
    rmap_items: int | None = None  # the kernel's rmap items, from sysfs (derive.savings)


@dataclass(frozen=True, slots=True)
class Prediction:
    full_scan_seconds: float
    cpu_ratio: float


@dataclass(frozen=True, slots=True)
class Model:
    """ksmd's cost: c per page and b per batch (CPU-seconds), s of sleep per batch, N pages."""

    c: float
    b: float
    s: float
    n: float
    n_source: NSource
    settings_seen: int  # distinct pages_to_scan values behind b (1: b not known, so 0)

    def batches(self, p: float) -> float:
        """A full scan ends with a partial batch: the next one starts the next scan."""
        return math.ceil(self.n / p - 1e-9)

    def cpu_seconds(self, p: float) -> float:
        return self.n * self.c + self.batches(p) * self.b

    def full_scan_seconds(self, p: float) -> float:
        return self.n * self.c + self.batches(p) * (self.b + self.s)

    def cpu_ratio(self, p: float) -> float:
        return self.cpu_seconds(p) / self.full_scan_seconds(p)

    def predict(self, p: float) -> Prediction:
        return Prediction(self.full_scan_seconds(p), self.cpu_ratio(p))

    def pages_for_budget(self, budget: float) -> float:
        """p_B with u(p_B) = B: c + b/p = B·(c + (b + s)/p). Below 1 when even one page a
        batch costs more than the budget; N (one batch a scan) when any pace fits."""
        room = budget * (self.b + self.s) - self.b
        if budget >= 1 or (self.c <= 0 and room >= 0):
            return self.n
        if room <= 0:
            return 0.0
        return min(self.n, room / (self.c * (1 - budget)))

    def pages_for_time(self, seconds: float) -> int:
        """The pages_to_scan whose whole number of batches gives the full-scan time closest
        to `seconds`: from the middle of the range of p with that many batches, so that N
        off by a little does not add or drop a batch."""
        per_batch = self.b + self.s
        if per_batch <= 0:
            return max(1, math.ceil(self.n))
        batches = max(1, round((seconds - self.n * self.c) / per_batch))
        if batches == 1:
            return max(1, math.ceil(self.n))
        return max(1, math.floor(self.n / (batches - 0.5)))


@dataclass(frozen=True, slots=True)
class Advice:
    state: State | None  # None until known
    model: Model | None  # None until fitted
    recommended_run: int | None = None
    target_full_scan_seconds: float | None = None  # T*
    pages_to_scan: int | None = None  # p*
    current: Prediction | None = None
    recommended: Prediction | None = None
    scans_needed: int = 0  # more observed full scans needed before the advice is complete


def per_page_cost(scans: Sequence[FullScan], n: float, n_source: NSource) -> float | None:
    """CPU-seconds per page over `scans`, None when none has the figures."""
    cpu = pages = 0.0
    for scan in scans:
        scanned = scan.pages_scanned if n_source == "pages_scanned" else n
        if scan.cpu_seconds is None or not scanned:
            continue
        cpu += scan.cpu_seconds * scan.scans
        pages += scanned * scan.scans
    return cpu / pages if pages else None


def fit_cost(
    settled: Sequence[FullScan], n: float, n_source: NSource
) -> tuple[float, float, int] | None:
    """(c, b, settings) from the CPU per page at each setting: least squares of c + b/p.

    The batch term shows only between settings far apart (at p = 1000 it is a few percent of
    the CPU per page, within the noise): b stays 0, and c the mean, unless the settings span
    a factor SPREAD and the fit gives both terms positive. `settings` is how many values
    the fit of b used, 1 when there is none.
    """
    points: list[tuple[float, float]] = []
    for p in sorted({s.pages_to_scan for s in settled if s.pages_to_scan}):
        y = per_page_cost([s for s in settled if s.pages_to_scan == p], n, n_source)
        if y is not None:
            points.append((1 / p, y))
    if not points:
        return None
    mean_y = sum(y for _, y in points) / len(points)
    if points[0][0] < SPREAD * points[-1][0]:  # sorted by p: x = 1/p falls
        return mean_y, 0.0, 1
    mean_x = sum(x for x, _ in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    b = sum((x - mean_x) * (y - mean_y) for x, y in points) / spread
    c = mean_y - b * mean_x
    if b <= 0 or c <= 0:  # noise: overstating CPU is the safe side
        return mean_y, 0.0, 1
    return c, b, len(points)


def pages_per_full_scan(cost: ScanCost, host: HostNow) -> tuple[float, NSource] | None:
    """pages_scanned per full scan over the latest observed scans (one interval may hold
    part of the next scan; over several the parts cancel out); where the kernel has no
    pages_scanned, its rmap items (one per page ksmd has looked at), from sysfs."""
    counted = [s for s in cost.scans if s.pages_scanned is not None][-CALIBRATION_SCANS:]
    if counted:
        scans = sum(s.scans for s in counted)
        pages = sum((s.pages_scanned or 0) * s.scans for s in counted) / scans
        return (pages, "pages_scanned") if pages else None
    if cost.scans and host.rmap_items:
        return float(host.rmap_items), "rmap_items"
    return None


def calibrate_sleep(
    settled: Sequence[FullScan],
    sleep_millisecs: int | None,
    model: tuple[float, float, float],
    n_source: NSource,
) -> float | None:
    """s from the latest scans at this sleep_millisecs, T = N·c + (N/p)·(b + s), using the
    most recent pages_to_scan seen with it."""
    c, b, n = model
    at_sleep = [s for s in settled if s.sleep_millisecs == sleep_millisecs and s.pages_to_scan]
    if not at_sleep:
        return None
    latest_p = at_sleep[-1].pages_to_scan
    assert latest_p is not None
    recent = [s for s in at_sleep if s.pages_to_scan == latest_p][-CALIBRATION_SCANS:]
    scans = sum(s.scans for s in recent)
    seconds = sum(s.running_seconds * s.scans for s in recent) / scans
    if n_source == "pages_scanned" and all(s.pages_scanned for s in recent):
        n = sum((s.pages_scanned or 0) * s.scans for s in recent) / scans
    return max(0.0, (seconds - n * c) / math.ceil(n / latest_p - 1e-9) - b)


def fit_model(cost: ScanCost, host: HostNow) -> Model | None:
    pages = pages_per_full_scan(cost, host)
    if pages is None:
        return None
    n, n_source = pages
    fitted = fit_cost(cost.settled, n, n_source)
    if fitted is None:
        return None
    c, b, seen = fitted
    s = calibrate_sleep(cost.settled, host.sleep_millisecs, (c, b, n), n_source)
    if s is None:
        return None
    return Model(c, b, s, n, n_source, seen)


def current_state(cost: ScanCost, host: HostNow) -> State | None:
    if host.run is None:
        return None
    if host.run & ~RUN_OFFLINE != RUN_RUNNING:
        return "stopped"
    if host.registered == 0:
        return "idle"
    return cost.trend.state  # unprofitable from ksm_memory_profit_bytes (scan_cost.raw_state)


def scans_needed(cost: ScanCost, model: Model | None) -> int:
    """Observed full scans still missing: one to start timing, one to time, three for the trend."""
    if cost.trend.state is not None and model is not None:
        return 0
    observed = len(cost.scans) + (cost.completion is not None)
    return max(1, 5 - observed)


def within_budget(model: Model, budget: float) -> int:
    """The largest whole pages_to_scan whose predicted CPU share is within the budget (1 when
    none is): p_B from the continuous model, lowered past the steps of the partial batch."""
    pages = max(1, math.floor(model.pages_for_budget(budget)))
    while pages > 1 and model.cpu_ratio(pages) > budget:
        pages = max(1, math.floor(model.n / (model.batches(pages) + 1)))
    return pages


def advise(cost: ScanCost, host: HostNow, options: TuningOptions) -> Advice:
    model = fit_model(cost, host)
    state = current_state(cost, host)
    needed = scans_needed(cost, model)
    if state is None:
        return Advice(None, model, scans_needed=needed)
    run = RUN_UNMERGE if state == "unprofitable" else RUN_RUNNING
    if model is None:
        return Advice(state, None, run, scans_needed=needed)
    current = None
    if host.pages_to_scan and host.run == RUN_RUNNING:
        p = host.pages_to_scan
        current = model.predict(p)
    if state not in ("backlog", "steady"):
        return Advice(state, model, run, current=current, scans_needed=needed)
    budget_pages = within_budget(model, options.cpu_budget)
    fastest = model.full_scan_seconds(budget_pages)
    target = fastest if state == "backlog" else max(options.steady_full_scan_seconds, fastest)
    pages = min(budget_pages, model.pages_for_time(target))
    now = host.pages_to_scan
    # The current setting gives the same scan (as many batches) within the budget: keep it.
    if (
        now
        and current is not None
        and now <= budget_pages
        and (model.batches(now) == model.batches(pages))
    ):
        pages = now
    return Advice(state, model, run, target, pages, current, model.predict(pages), needed)


def host_now(ksm: KsmSysfs, processes: ProcessReading | None) -> HostNow:
    """The settings read now, the kernel's rmap items, and how many processes are registered
    (None where the sweep is off, the kernel has no per-process counters, or processes could
    not all be read)."""
    registered = None
    sweep = None if processes is None else processes.sweep
    if sweep is not None and sweep.fields and not sweep.unreadable:
        registered = len(sweep.registered)
    return HostNow(
        run=ksm.run,
        pages_to_scan=ksm.pages_to_scan,
        sleep_millisecs=ksm.sleep_millisecs,
        registered=registered,
        rmap_items=rmap_items(ksm),
    )

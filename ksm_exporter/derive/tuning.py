"""Tuning advice: what pace of scanning to set, from the measured cost of ksmd's scans.

Model of ksmd, as mm/ksm.c runs it:

- ksm_scan_thread() calls ksm_do_scan(pages_to_scan) once a wake-up, which calls
  scan_get_next_rmap_item() until it has returned p = pages_to_scan pages or NULL, the end
  of a full scan; the next wake-up starts the next scan. So a full scan of N pages takes
  floor(N/p) + 1 wake-ups: floor(N/p) of p pages, and one of the N mod p left (none when p
  divides N: a wake-up that only ends the scan).
- After each, ksmd sleeps wait_event_freezable_timeout(..., msecs_to_jiffies(sleep_millisecs)):
  S = sleep_millisecs rounded up to whole jiffies of 1/CONFIG_HZ. The timer wheel never fires
  early (calc_index() in kernel/time/timer.c rounds the expiry up by one jiffy), and the timeout
  counts from the jiffy the batch ended in: a batch whose work (CPU plus waiting for a CPU)
  took X seconds from the tick that woke it starts again (S + 1 + floor(X/j)) jiffies later.
  Its phase against the tick spread over a jiffy, floor(X/j) is taken as max(0, X/j - 1/2).
  sleep_millisecs = 0 does not sleep at all.
- The CPU of a batch is c per page returned (counted in pages_scanned) plus b a wake-up; the
  per-scan work (lru_add_drain_all() at the start of each scan, the pages smart_scan skips,
  the unstable tree's reset) is counted in c, as the mean over whole scans. The time ksmd
  waited for a CPU (schedstat's run_delay) is taken in proportion to its CPU; so is the time
  it was off a CPU without waiting for one (blocked on a page or mmap lock, lru_add_drain_all()
  waiting for other CPUs' workers), which no counter shows: where the scans at the latest
  setting took longer than their sleeps by more than half a jiffy a wake-up and a sixth of
  the scan, it is solved from their measured time (`off_cpu`), else 0.
- smart_scan (should_skip_rmap_item()) skips a page that did not merge for 1, 2, 4, then 8
  scans between visits: N, the full-scan time and the CPU of a scan repeat over about
  SMART_SCAN_CYCLE scans, so where pages were skipped the figures are means over a whole
  cycle.

c and b are fitted to the CPU per page of the scans seen at each recent pages_to_scan (CPU
per page = c + b/p, a line in 1/p; b = 0 while only one setting was seen), the CPU a page
never below the one measured at the latest setting. N is
pages_scanned per full scan; where the kernel has no pages_scanned, the registered processes'
rmap items (about one per page ksmd has looked at). HZ is CONFIG_HZ where the kernel's
configuration is readable, else assumed (sources/kernel_config.py).

The model is checked against the full-scan time it was fitted to: where it misses that by more
than HOLDS_WITHIN, has fewer scans than the window needs (wanted_scans()), or ksmd does not
sleep (sleep_millisecs 0), the advice says it does not hold and predicts nothing.

The advice: with a budget B (share of one CPU) the shortest full-scan time within it,
T_B = T(p_B) where u(p_B) <= B; a backlog (saved memory still growing) gets T_B, a steady
host max(steady target, T_B), an unprofitable one run = 2: unmerge, which frees every
rmap item (unmerge_and_remove_all_rmap_items()); run = 0 only stops ksmd and frees nothing.
Nothing is written anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from ksm_exporter.derive.process_selection import ProcessReading
from ksm_exporter.derive.savings import rmap_items
from ksm_exporter.derive.scan_cost import FullScan, ScanCost
from ksm_exporter.sources.kernel_config import ASSUMED_HZ, HzSource, KernelHz
from ksm_exporter.sources.ksm_files import RUN_RUNNING, RUN_UNMERGE, ksmd_scanning, merging_on
from ksm_exporter.sources.sysfs import KsmSysfs

State = Literal["stopped", "idle", "unprofitable", "backlog", "steady"]
STATES: tuple[State, ...] = ("stopped", "idle", "unprofitable", "backlog", "steady")
NSource = Literal["pages_scanned", "rmap_items"]
CALIBRATION_SCANS = 6  # latest kernel full scans behind N, the run delay and the check
SHORT_SCANS = 24  # as many, where scans are shorter than the sampling interval
SMART_SCAN_CYCLE = 9  # scans over which smart_scan's skips repeat: visited 1 in 1+8
SKIPPED_SHARE = 0.02  # skipped pages, per page returned, below which the cycle changes N little
SPREAD = 2  # how far apart pages_to_scan values must be to tell the cost per batch
HOLDS_WITHIN = 0.25  # the model must explain the measured full-scan time within this share
MAX_OFF_CPU = 20.0  # seconds off a CPU per CPU-second: past this, something else sets the pace


@dataclass(frozen=True, slots=True)
class TuningOptions:
    cpu_budget: float = 0.1  # share of one CPU granted to ksmd
    steady_full_scan_seconds: float = 200.0  # the kernel advisor's default target
    # While the host is short of memory (derive/memory_pressure.py) a saved page is worth more
    # CPU: the tuner grants ksmd this share instead.
    pressure_cpu_budget: float = 0.25
    # After the tuner unmerged (run=2), it lets ksmd look again this often where nothing
    # else says mergeable memory appeared (derive/tuner_policy.py).
    probe_seconds: float = 3600.0

    def budget(self, short_of_memory: bool) -> float:
        if short_of_memory:
            return max(self.cpu_budget, self.pressure_cpu_budget)
        return self.cpu_budget


@dataclass(frozen=True, slots=True)
class HostNow:
    """What a collection knows now, besides the sampler's scans."""

    run: int | None
    pages_to_scan: int | None
    sleep_millisecs: int | None
    registered: int | None = None  # processes registered with KSM (None: not swept)
    rmap_items: int | None = None  # the kernel's rmap items, from sysfs (derive.savings)
    hz: int = ASSUMED_HZ  # CONFIG_HZ
    hz_source: HzSource = "assumed"


@dataclass(frozen=True, slots=True)
class Prediction:
    full_scan_seconds: float
    cpu_ratio: float


def msecs_to_jiffies(millisecs: int, hz: int) -> int:
    """As the kernel's msecs_to_jiffies(): rounded up to whole jiffies."""
    return -(-millisecs * hz // 1000)


@dataclass(frozen=True, slots=True)
class Model:
    """ksmd's cost: c per page and b per wake-up (CPU-seconds), N pages a full scan, the
    sleep in whole jiffies of 1/hz, and run_delay seconds waiting for a CPU per CPU-second."""

    c: float
    b: float
    n: float
    n_source: NSource
    settings_seen: int  # distinct pages_to_scan values behind b (1: b not known, so 0)
    sleep_millisecs: int = 20
    hz: int = ASSUMED_HZ
    hz_source: HzSource = "assumed"
    run_delay: float = 0.0
    off_cpu: float = 0.0  # seconds off a CPU, not waiting for one, per CPU-second: solved
    per_page_floor: float = 0.0  # CPU-seconds a page at the latest setting: never less
    skipped: float = 0.0  # pages smart_scan skipped a full scan (mean over the scans seen)
    scans: int = 0  # kernel full scans behind N and the check

    @property
    def jiffy(self) -> float:
        return 1 / self.hz

    @property
    def sleep_jiffies(self) -> int:
        return msecs_to_jiffies(self.sleep_millisecs, self.hz)

    @property
    def s(self) -> float:
        """The shortest wake-to-wake time of a batch: S jiffies, one more for the timer
        wheel's rounding (none where sleep_millisecs is 0)."""
        jiffies = self.sleep_jiffies
        return (jiffies + 1) * self.jiffy if jiffies else 0.0

    def at_sleep(self, sleep_millisecs: int) -> Model:
        return replace(self, sleep_millisecs=sleep_millisecs)

    def batches(self, p: float) -> int:
        """Wake-ups a full scan: floor(N/p) + 1 (ksm_do_scan() returns at the scan's end)."""
        return math.floor(self.n / p + 1e-9) + 1

    def batch_seconds(self, pages: float) -> float:
        """Wake to wake for a batch of `pages`: its work, then the sleep in whole jiffies."""
        work = (pages * self.c + self.b) * (1 + self.run_delay + self.off_cpu)
        if not self.sleep_jiffies:
            return work
        return self.s + self.jiffy * max(0.0, work / self.jiffy - 0.5)

    def cycle(self) -> tuple[tuple[float, float], ...]:
        """(share of the scans, N) over smart_scan's cycle. Pages registered together age
        together: once aged, the U that never merge are looked at in one scan of
        SMART_SCAN_CYCLE (M + U pages returned) and skipped in the others (M). From the
        means over whole cycles: skipped = U·8/9, N = M + U/9. Without skips, one N."""
        if self.skipped <= 0:
            return ((1.0, self.n),)
        skipping = SMART_SCAN_CYCLE - 1
        unmerged = self.skipped * SMART_SCAN_CYCLE / skipping
        merged = max(0.0, self.n - unmerged / SMART_SCAN_CYCLE)
        return ((1 / SMART_SCAN_CYCLE, merged + unmerged), (skipping / SMART_SCAN_CYCLE, merged))

    def cpu_seconds(self, p: float) -> float:
        """N·c + wake-ups·b, never below the CPU a page measured at the latest setting: a
        cost per wake-up fitted to settings seen one after the other may be the cost of a
        page drifting meanwhile (pages merging), and overstating the CPU is the safe side."""
        wakeups = sum(share * (math.floor(n / p + 1e-9) + 1) for share, n in self.cycle())
        return max(self.n * self.c + wakeups * self.b, self.n * self.per_page_floor)

    def full_scan_seconds(self, p: float) -> float:
        """The mean over smart_scan's cycle: the wake-ups of a scan do not scale with N."""
        return sum(share * self.scan_seconds(n, p) for share, n in self.cycle())

    def scan_seconds(self, n: float, p: float) -> float:
        batches = math.floor(n / p + 1e-9) + 1
        last = max(0.0, n - (batches - 1) * p)
        return (batches - 1) * self.batch_seconds(p) + self.batch_seconds(last)

    def cpu_ratio(self, p: float) -> float:
        return self.cpu_seconds(p) / self.full_scan_seconds(p)

    def predict(self, p: float) -> Prediction:
        return Prediction(self.full_scan_seconds(p), self.cpu_ratio(p))

    def pages_for_time(self, seconds: float) -> int:
        """The pages_to_scan whose whole number of wake-ups gives the full-scan time closest
        to `seconds`: from the middle of the range of p with that many (N/(k - 1/2) for k
        wake-ups), so that N off by a little does not add or drop one."""
        top = max(1, math.ceil(self.n) + 1)

        def pages(wakeups: int) -> int:
            return max(1, math.floor(self.n / (wakeups - 0.5)))

        low, high = 1, top  # full-scan time grows with the wake-ups
        while low < high:
            middle = (low + high) // 2
            if self.full_scan_seconds(pages(middle)) < seconds:
                low = middle + 1
            else:
                high = middle
        candidates = {max(1, low - 1), low}
        best = min(candidates, key=lambda k: abs(self.full_scan_seconds(pages(k)) - seconds))
        return pages(best)


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
    check: Check | None = None  # the model against the scans it was fitted to
    not_holding: str | None = None  # why nothing is predicted although a model is fitted


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


def calibration_window(scans: Sequence[FullScan]) -> list[FullScan]:
    """The latest observed scans behind N, the run delay and the check: CALIBRATION_SCANS
    kernel full scans, or a whole smart_scan cycle (SMART_SCAN_CYCLE) where any of them
    skipped pages; fewer while fewer were seen."""
    window: list[FullScan] = []
    total = 0
    for scan in reversed(scans):
        window.insert(0, scan)
        total += scan.scans
        if total >= wanted_scans(window):
            break
    return window


def wanted_scans(window: Sequence[FullScan]) -> int:
    """A scan's end is seen at the next sample: the figures of a window are off by up to one
    sampling interval, or one scan where scans are shorter, at its two ends. Where scans are
    shorter than the interval, SHORT_SCANS keep that within 1/SHORT_SCANS; smart_scan's
    figures repeat over a cycle: whole cycles."""
    seconds = sum(scan.running_seconds * scan.scans for scan in window)
    scans = sum(scan.scans for scan in window)
    interval = max((scan.interval for scan in window), default=0.0)
    short = seconds > 0 and interval > 0 and interval * scans / seconds > 0.5
    if skipping(window):
        return SMART_SCAN_CYCLE * (3 if short else 1)
    return SHORT_SCANS if short else CALIBRATION_SCANS


def skipping(window: Sequence[FullScan]) -> bool:
    """Whether smart_scan skipped enough pages for its cycle to matter: visited one scan in
    nine, skipped pages make N of a scan differ by their number."""
    skipped = sum((scan.pages_skipped or 0) * scan.scans for scan in window)
    scanned = sum((scan.pages_scanned or 0) * scan.scans for scan in window)
    return skipped > SKIPPED_SHARE * scanned


def cycle_missing(window: Sequence[FullScan]) -> int:
    """Kernel full scans still missing for a whole smart_scan cycle, 0 where none skipped."""
    if not skipping(window):
        return 0
    return max(0, wanted_scans(window) - sum(scan.scans for scan in window))


def mean_of(window: Sequence[FullScan], of: str) -> float | None:
    """The mean per kernel full scan of one of FullScan's figures, None where one lacks it."""
    figures: list[tuple[float | None, int]] = [(getattr(scan, of), scan.scans) for scan in window]
    total = 0.0
    for value, count in figures:
        if value is None:
            return None
        total += value * count
    scans = sum(count for _, count in figures)
    return total / scans if scans else None


def pages_per_full_scan(cost: ScanCost, host: HostNow) -> tuple[float, NSource] | None:
    """pages_scanned per full scan over the calibration window (one interval may hold part
    of the next scan; over several the parts cancel out); where the kernel has no
    pages_scanned, its rmap items (one per page ksmd has looked at), from sysfs."""
    counted = calibration_window([s for s in cost.scans if s.pages_scanned is not None])
    if counted:
        pages = mean_of(counted, "pages_scanned")
        return (pages, "pages_scanned") if pages else None
    if cost.scans and host.rmap_items:
        return float(host.rmap_items), "rmap_items"
    return None


def run_delay_ratio(window: Sequence[FullScan]) -> float:
    """Seconds ksmd waited for a CPU per second it ran, over the window; 0 where unknown."""
    cpu = delay = 0.0
    for scan in window:
        if scan.cpu_seconds is None or scan.run_delay_seconds is None:
            continue
        cpu += scan.cpu_seconds * scan.scans
        delay += scan.run_delay_seconds * scan.scans
    return delay / cpu if cpu > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Check:
    """The model against the full scans it was fitted to, at the latest setting."""

    pages_to_scan: int
    scans: int
    measured_seconds: float
    predicted_seconds: float
    missing: int = 0  # kernel full scans the calibration window still lacks

    @property
    def error(self) -> float:
        return abs(self.predicted_seconds - self.measured_seconds) / self.measured_seconds


def check_model(model: Model, settled: Sequence[FullScan], sleep: int | None) -> Check | None:
    """The latest pages_to_scan seen at this sleep_millisecs, over a calibration window of its
    scans: the measured mean full-scan time beside the model's, for the N of those scans."""
    at_sleep = [s for s in settled if s.sleep_millisecs == sleep and s.pages_to_scan]
    if not at_sleep:
        return None
    latest = at_sleep[-1].pages_to_scan
    assert latest is not None
    window = calibration_window([s for s in at_sleep if s.pages_to_scan == latest])
    seconds = mean_of(window, "running_seconds")
    if not seconds:
        return None
    pages = mean_of(window, "pages_scanned") if model.n_source == "pages_scanned" else None
    at = model if pages is None else replace(model, n=pages)
    scans = sum(s.scans for s in window)
    return Check(latest, scans, seconds, at.full_scan_seconds(latest))


def solve_off_cpu(model: Model, check: Check) -> float:
    """The time off a CPU per CPU-second that makes the scans at the check's setting take what
    they measured, where they took longer than their sleeps by more than half a jiffy a
    wake-up (the model's rounding) and a sixth of the scan (twice what the calibration
    window may be off by): less, and solving would magnify noise; else 0. At most
    MAX_OFF_CPU: past that the check shows the model does not hold."""
    p = check.pages_to_scan
    beyond = check.measured_seconds - model.batches(p) * model.s
    if beyond <= max(model.batches(p) * model.jiffy / 2, check.measured_seconds / 6):
        return 0.0
    low, high = 0.0, MAX_OFF_CPU
    for _ in range(40):
        middle = (low + high) / 2
        if replace(model, off_cpu=middle).full_scan_seconds(p) < check.measured_seconds:
            low = middle
        else:
            high = middle
    return low


def fit_model(cost: ScanCost, host: HostNow) -> tuple[Model, Check] | None:
    pages = pages_per_full_scan(cost, host)
    if pages is None or host.sleep_millisecs is None:
        return None
    n, n_source = pages
    fitted = fit_cost(cost.settled, n, n_source)
    if fitted is None:
        return None
    c, b, seen = fitted
    window = calibration_window(cost.scans)
    if cycle_missing(window):
        return None  # a part of a smart_scan cycle: N and the CPU would depend on which
    model = Model(
        c,
        b,
        n,
        n_source,
        seen,
        host.sleep_millisecs,
        host.hz,
        host.hz_source,
        run_delay=run_delay_ratio(window),
        skipped=mean_of(window, "pages_skipped") or 0.0,
        scans=sum(s.scans for s in window),
    )
    check = check_model(model, cost.settled, host.sleep_millisecs)
    if check is None:
        return None
    unfitted = replace(model, n=check_n(model, cost.settled, check))
    off_cpu = solve_off_cpu(unfitted, check)
    at_latest = [s for s in cost.settled if s.pages_to_scan == check.pages_to_scan]
    floor = per_page_cost(calibration_window(at_latest), model.n, n_source) or 0.0
    model = replace(model, off_cpu=off_cpu, per_page_floor=floor)
    predicted = replace(unfitted, off_cpu=off_cpu).full_scan_seconds(check.pages_to_scan)
    missing = max(0, wanted_scans(window) - model.scans)
    return model, replace(check, predicted_seconds=predicted, missing=missing)


def check_n(model: Model, settled: Sequence[FullScan], check: Check) -> float:
    """N over the scans the check measured, where the kernel counts pages_scanned."""
    if model.n_source != "pages_scanned":
        return model.n
    at = [s for s in settled if s.pages_to_scan == check.pages_to_scan]
    pages = mean_of(calibration_window(at), "pages_scanned")
    return pages or model.n


def not_holding(model: Model, check: Check) -> str | None:
    """Why the model's predictions cannot be trusted here, or None."""
    if not model.sleep_jiffies:
        # wait_event_freezable_timeout() with a timeout of 0 returns at once: no sleep, no
        # tick to count in, scans as short as the work, ksmd on a CPU as long as it is let.
        return (
            "sleep_millisecs is 0: ksmd never sleeps between wake-ups and takes what CPU the "
            "scheduler leaves it; set a sleep to have a pace to predict"
        )
    if check.missing:
        return (
            f"{model.scans} full scans seen, each about as short as the sampling interval "
            f"or shorter: {check.missing} more give N and the full-scan time within 1/24"
        )
    if check.error > HOLDS_WITHIN:
        assumed = " (HZ assumed: no kernel configuration readable)" * (model.hz_source == "assumed")
        return (
            f"the model gives {check.predicted_seconds:.3g} s a full scan at pages_to_scan "
            f"{check.pages_to_scan}, ksmd took {check.measured_seconds:.3g} s{assumed}"
        )
    return None


def current_state(cost: ScanCost, host: HostNow) -> State | None:
    if host.run is None:
        return None
    if not merging_on(host.run):
        return "stopped"
    if host.registered == 0:
        return "idle"
    return cost.trend.state  # unprofitable from ksm_memory_profit_bytes (scan_cost.raw_state)


def scans_needed(cost: ScanCost, model: Model | None) -> int:
    """Observed full scans still missing: one to start timing, one to time, three for the
    trend; where smart_scan skipped pages, a whole cycle of them."""
    if cost.trend.state is not None and model is not None:
        return 0
    observed = len(cost.scans) + (cost.completion is not None)
    return max(1, 5 - observed, cycle_missing(calibration_window(cost.scans)))


def within_budget(model: Model, budget: float) -> int:
    """The largest whole pages_to_scan whose predicted CPU share is within the budget (1 when
    none is). The share grows with p but for the steps of the last, partial batch: bisect on
    it, then lower past any step still over."""
    top = max(1, math.ceil(model.n) + 1)  # one wake-up a scan: no faster pace
    if model.cpu_ratio(top) <= budget:
        return top
    low, high = 1, top
    while low < high:
        middle = (low + high + 1) // 2
        if model.cpu_ratio(middle) <= budget:
            low = middle
        else:
            high = middle - 1
    pages = low
    while pages > 1 and model.cpu_ratio(pages) > budget:
        pages = max(1, math.floor(model.n / model.batches(pages)))
    return pages


def advise(cost: ScanCost, host: HostNow, options: TuningOptions) -> Advice:
    fitted = fit_model(cost, host)
    model, check = (None, None) if fitted is None else fitted
    state = current_state(cost, host)
    needed = scans_needed(cost, model)
    if state is None:
        return Advice(None, model, scans_needed=needed)
    run = RUN_UNMERGE if state == "unprofitable" else RUN_RUNNING
    if model is None:
        return Advice(state, None, run, scans_needed=needed)
    assert check is not None
    unsure = not_holding(model, check)
    current = None
    if host.pages_to_scan and ksmd_scanning(host.run) and unsure is None:
        current = model.predict(host.pages_to_scan)
    if state not in ("backlog", "steady"):
        return Advice(
            state, model, run, current=current, scans_needed=needed, check=check, not_holding=unsure
        )
    budget_pages = within_budget(model, options.cpu_budget)
    fastest = model.full_scan_seconds(budget_pages)
    target = fastest if state == "backlog" else max(options.steady_full_scan_seconds, fastest)
    pages = min(budget_pages, model.pages_for_time(target))
    now = host.pages_to_scan
    # The current setting gives the same scan (as many batches) within the budget: keep it.
    if (
        now
        and ksmd_scanning(host.run)
        and now <= budget_pages
        and model.batches(now) == model.batches(pages)
    ):
        pages = now
    recommended = None if unsure else model.predict(pages)
    return Advice(state, model, run, target, pages, current, recommended, needed, check, unsure)


def host_now(
    ksm: KsmSysfs, processes: ProcessReading | None, hz: KernelHz | None = None
) -> HostNow:
    """The settings read now, the kernel's rmap items, how many processes are registered
    (None where the sweep is off, the kernel has no per-process counters, or processes could
    not all be read) and the kernel's HZ (assumed where not given)."""
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
        hz=ASSUMED_HZ if hz is None else hz.hz,
        hz_source="assumed" if hz is None else hz.source,
    )

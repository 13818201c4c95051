"""A discrete-event simulation of ksmd that writes the files the exporter's sampler reads.

ksmd scans N registered pages in batches of `pages_to_scan`: a batch costs `batch_cpu`
plus `page_cpu` per page, then ksmd sleeps `sleep_millisecs` rounded up to whole jiffies
and woken on a jiffy boundary, as the kernel's timers do. A full scan ends with a partial
batch where N is not a multiple of the batch. Saved pages and general_profit follow a
caller's function of the number of completed passes. The simulation runs on the test's
ManualClock; `advance_to` moves it and writes the fixture tree at that instant.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ksm_exporter.collector.collection import KsmCollection
from ksm_exporter.sources.roots import Roots
from tests.support.sampling import (
    CLOCK_TICKS,
    KSMD_PID,
    ManualClock,
    copy_fixture,
    write_ksm,
    write_schedstat,
)

NANOSECONDS = 1_000_000_000
RMAP_ITEM_BYTES = 64


def saturating(total: int, per_pass: float = 0.5) -> Callable[[int], int]:
    """Saved pages after `passes`: half of what is left merges each pass (none on the first:
    a page merges once it stayed the same over one pass)."""
    return lambda passes: 0 if passes < 2 else round(total * (1 - per_pass ** (passes - 1)))


@dataclass
class KsmdSimulator:
    roots: Roots
    clock: ManualClock
    pages: int  # N, pages per full scan
    page_cpu: float  # c, CPU-seconds per page
    batch_cpu: float  # b, CPU-seconds per batch
    hz: int
    pages_to_scan: int = 100
    sleep_millisecs: int = 20
    saved: Callable[[int], int] = field(default_factory=lambda: saturating(0))
    page_size: int = 4096
    run: int = 1
    counts_pages: bool = True  # 6.1 has no pages_scanned; 6.12 has
    full_scans: int = 0
    pages_scanned: int = 0
    cpu_ns: int = 0
    position: int = 0  # pages of the current pass done
    next_event: float = 0.0  # when the next batch starts
    scan_ends: list[float] = field(default_factory=list)  # when each pass ended
    scan_cpu: list[float] = field(default_factory=list)  # CPU-seconds each pass used
    _pass_cpu_ns: int = 0
    _written: dict[str, int] = field(default_factory=dict)  # what the tree holds now

    def __post_init__(self) -> None:
        self.next_event = self.clock.now
        self.write()

    def set(self, **settings: int) -> None:
        """As `echo` into sysfs, taking effect from the next batch."""
        for name, value in settings.items():
            setattr(self, name, value)
        self.write()

    @property
    def sleep_jiffies(self) -> int:
        return math.ceil(self.sleep_millisecs * self.hz / 1000)  # msecs_to_jiffies rounds up

    def batch(self) -> None:
        started = self.next_event
        pages = min(self.pages_to_scan, self.pages - self.position)
        cpu = pages * self.page_cpu + self.batch_cpu
        cpu_ns = round(cpu * NANOSECONDS)
        self.cpu_ns += cpu_ns
        self._pass_cpu_ns += cpu_ns
        self.pages_scanned += pages
        self.position += pages
        done = started + cpu
        if self.position >= self.pages:
            self.full_scans += 1
            self.position = 0
            self.scan_ends.append(done)
            self.scan_cpu.append(self._pass_cpu_ns / NANOSECONDS)
            self._pass_cpu_ns = 0
        wake_jiffy = math.floor(done * self.hz) + self.sleep_jiffies
        self.next_event = wake_jiffy / self.hz

    def advance_to(self, at: float) -> None:
        """Runs every batch that starts before `at`, then shows the state at `at`."""
        while self.run == 1 and self.next_event < at:
            self.batch()
        if self.run != 1:
            self.next_event = at
        self.clock.now = at
        self.write()

    def write(self) -> None:
        saved = self.saved(self.full_scans)
        values = {
            "run": self.run,
            "pages_to_scan": self.pages_to_scan,
            "sleep_millisecs": self.sleep_millisecs,
            "full_scans": self.full_scans,
            "pages_scanned": self.pages_scanned,
            "pages_sharing": saved,
            "ksm_zero_pages": 0,
            "general_profit": saved * self.page_size - self.pages * RMAP_ITEM_BYTES,
        }
        if not self.counts_pages:
            del values["pages_scanned"]
            (Path(self.roots.sysfs) / "kernel" / "mm" / "ksm" / "pages_scanned").unlink(
                missing_ok=True
            )
        values["schedstat"] = self.cpu_ns
        for name, value in values.items():
            if self._written.get(name) == value:
                continue  # unchanged: the sampler reads the same either way, and writes are slow
            if name == "schedstat":
                write_schedstat(self.roots, KSMD_PID, value)
            else:
                write_ksm(self.roots, name, value)
            self._written[name] = value

    def full_scan_seconds(self, last: int = 3) -> float:
        """The true mean duration of the last `last` passes."""
        ends = self.scan_ends[-(last + 1) :]
        return (ends[-1] - ends[0]) / (len(ends) - 1)

    def cpu_ratio(self, last: int = 3) -> float:
        return sum(self.scan_cpu[-last:]) / (self.full_scan_seconds(last) * last)


def run_for(
    simulator: KsmdSimulator, tick: Callable[[], object], seconds: float, step: float
) -> None:
    """Moves the simulation on by `seconds`, letting the sampler tick every `step`."""
    end = simulator.clock.now + seconds
    while simulator.clock.now < end - 1e-9:
        simulator.advance_to(simulator.clock.now + step)
        tick()


def simulated_ksmd(
    directory: Path,
    pages: int,
    saved: Callable[[int], int],
    *,
    pages_to_scan: int = 100,
    advisor: bool = False,
) -> KsmdSimulator:
    """A ksmd costing what one did on a real host (0.5 us of CPU a page, 30 us a batch, at
    HZ 250) over `pages` registered pages, writing a copy of the `current` fixture in
    `directory` on a clock of its own, with the kernel's scan-time advisor on or off."""
    roots = copy_fixture("current", directory)
    mode = "none [scan-time]" if advisor else "[none] scan-time"
    (Path(roots.sysfs) / "kernel" / "mm" / "ksm" / "advisor_mode").write_text(mode + "\n")
    return KsmdSimulator(
        roots,
        ManualClock(),
        pages=pages,
        page_cpu=0.5e-6,
        batch_cpu=30e-6,
        hz=250,
        pages_to_scan=pages_to_scan,
        saved=saved,
    )


def tuned_collection(directory: Path) -> KsmCollection:
    """The `current` fixture (the advisor on, as captured) after the sampler has seen a
    simulated ksmd complete enough full scans at two pages_to_scan values for the whole
    tuning advice."""
    sim = simulated_ksmd(
        directory, 20_000, saturating(20_000, 0.9), pages_to_scan=1000, advisor=True
    )
    collection = KsmCollection(sim.roots, clock=sim.clock, clock_ticks=CLOCK_TICKS)
    for pages_to_scan in (1000, 2000):
        sim.set(pages_to_scan=pages_to_scan)
        target = sim.full_scans + 6
        while sim.full_scans < target:
            run_for(sim, collection.sampler.tick, 0.1, 0.1)
    return collection

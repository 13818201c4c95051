"""A discrete-event simulation of ksmd that writes the files the exporter's sampler reads.

ksmd scans N registered pages in batches of `pages_to_scan` (ksm_do_scan()): a batch costs
`batch_cpu` plus `page_cpu` per page returned, and ends early where the scan ends, so a scan
takes floor(N/p) + 1 wake-ups (the last one only ends the scan where p divides N). ksmd then
sleeps msecs_to_jiffies(sleep_millisecs), whole jiffies rounded up, counted from the jiffy the
batch ended in, and the timer wheel fires one jiffy later than that (calc_index() in
kernel/time/timer.c never fires early): it wakes on a tick. A busy host makes ksmd wait
`run_delay` seconds for a CPU per second it runs (schedstat's second field), and `blocked`
seconds asleep on locks (which no counter shows). `unmerged`
pages never merge: smart_scan (should_skip_rmap_item()) skips them by their age, 1, 2, 4
then 8 scans between visits, each skip costing `skip_cpu` and counted in pages_skipped.
Saved pages and general_profit follow a caller's function of the number of completed passes.
The simulation runs on the test's ManualClock; `advance_to` moves it and writes the fixture
tree at that instant.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ksm_exporter.collector.collection import KsmCollection
from ksm_exporter.derive.tuning import TuningOptions
from ksm_exporter.reading.host_reader import HostReader
from ksm_exporter.sources.roots import Roots
from ksm_exporter.tune.state_file import StateFile
from ksm_exporter.tune.tuner import Tuner
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
    run_delay: float = 0.0  # seconds waiting for a CPU per CPU-second run
    blocked: float = 0.0  # seconds asleep on a lock per CPU-second run: no counter shows it
    unmerged: int = 0  # of the N pages, those that never merge: smart_scan skips them
    skip_cpu: float = 0.0  # CPU-seconds a skipped page costs
    smart_scan: bool = True
    full_scans: int = 0
    pages_skipped: int = 0
    delay_ns: int = 0
    age: int = 0  # the unmerged pages' rmap_item age (all registered together: one age)
    remaining_skips: int = 0
    skipping: bool = False  # this scan skips the unmerged pages
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
        # The kernel's configuration as CONFIG_IKCONFIG_PROC serves it: where HZ is read.
        config = f"CONFIG_HZ_{self.hz}=y\nCONFIG_HZ={self.hz}\n".encode()
        (Path(self.roots.procfs) / "config.gz").write_bytes(gzip.compress(config))
        self.write()

    def set(self, **settings: int) -> None:
        """As `echo` into sysfs, taking effect from the next batch. run=2 unmerges as
        unmerge_and_remove_all_rmap_items() does: every rmap item freed, full_scans (the
        scan's seqnr) back to 0, the scan starting afresh when run is 1 again."""
        for name, value in settings.items():
            setattr(self, name, value)
        if settings.get("run") == 2:
            self.full_scans = self.position = self.age = self.remaining_skips = 0
            self.skipping = False
        self.write()

    @property
    def sleep_jiffies(self) -> int:
        return math.ceil(self.sleep_millisecs * self.hz / 1000)  # msecs_to_jiffies rounds up

    @property
    def scan_pages(self) -> int:
        """Pages scan_get_next_rmap_item() returns this scan: the unmerged ones not skipped."""
        return self.pages - self.unmerged * self.skipping

    def start_scan(self) -> None:
        """should_skip_rmap_item() for the unmerged pages, at the first look this scan."""
        age = self.age
        self.age = min(255, age + 1)
        if not self.smart_scan or age < 3:
            self.skipping = False
        elif not self.remaining_skips:
            self.remaining_skips = 1 if age <= 3 else 2 if age <= 5 else 4 if age <= 8 else 8
            self.skipping = False
        else:
            self.remaining_skips -= 1
            self.skipping = True

    def batch(self) -> None:
        started = self.next_event
        if self.position == 0:
            self.start_scan()
        pages = min(self.pages_to_scan, self.scan_pages - self.position)
        cpu = pages * self.page_cpu + self.batch_cpu
        ended = pages < self.pages_to_scan  # scan_get_next_rmap_item() returned NULL
        if self.skipping:  # the skipped pages lie among those returned
            cpu += self.unmerged * self.skip_cpu * pages / max(1, self.scan_pages)
            self.pages_skipped += self.unmerged * ended
        cpu_ns = round(cpu * NANOSECONDS)
        self.cpu_ns += cpu_ns
        self.delay_ns += round(cpu * self.run_delay * NANOSECONDS)
        self._pass_cpu_ns += cpu_ns
        self.pages_scanned += pages
        self.position += pages
        done = started + cpu * (1 + self.run_delay + self.blocked)
        if ended:
            self.full_scans += 1
            self.position = 0
            self.scan_ends.append(done)
            self.scan_cpu.append(self._pass_cpu_ns / NANOSECONDS)
            self._pass_cpu_ns = 0
        if not self.sleep_jiffies:  # no timeout: ksm_scan_thread() goes straight on
            self.next_event = done
            return
        wake_jiffy = math.floor(done * self.hz + 1e-9) + self.sleep_jiffies + 1
        self.next_event = wake_jiffy / self.hz

    @property
    def rmap_items(self) -> int:
        """One a page ksmd has looked at since the last unmerge (run=2 frees them all)."""
        if self.full_scans == 0 and self.position == 0:
            return 0
        return self.pages if self.full_scans else self.position

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
            "pages_skipped": self.pages_skipped,
            "pages_sharing": saved,
            "ksm_zero_pages": 0,
            "general_profit": saved * self.page_size - self.rmap_items * RMAP_ITEM_BYTES,
        }
        if not self.counts_pages:
            for name in ("pages_scanned", "pages_skipped"):
                del values[name]
                (Path(self.roots.sysfs) / "kernel" / "mm" / "ksm" / name).unlink(missing_ok=True)
        values["schedstat"] = self.cpu_ns
        values["run_delay"] = self.delay_ns
        for name, value in values.items():
            if self._written.get(name) == value:
                continue  # unchanged: the sampler reads the same either way, and writes are slow
            if name in {"schedstat", "run_delay"}:
                write_schedstat(self.roots, KSMD_PID, self.cpu_ns, self.delay_ns)
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
    collection = KsmCollection(HostReader(sim.roots, clock=sim.clock, clock_ticks=CLOCK_TICKS))
    for pages_to_scan in (1000, 2000):
        sim.set(pages_to_scan=pages_to_scan)
        target = sim.full_scans + 6
        while sim.full_scans < target:
            run_for(sim, collection.reader.sampler.tick, 0.1, 0.1)
    return collection


def tuner_collection(directory: Path) -> KsmCollection:
    """The `current` fixture with the advisor off, after `ksm-exporter tune` ran a minute on
    a simulated ksmd and stopped, keeping its state file beside the tree; the collection reads
    that file as the server does."""
    sim = simulated_ksmd(directory, 32_768, saturating(16_384))
    state = directory / "tune.json"
    tuner = Tuner(
        sim.roots,
        TuningOptions(steady_full_scan_seconds=20),
        clock=sim.clock,
        wall_clock=sim.clock,
        clock_ticks=CLOCK_TICKS,
        state_file=StateFile(str(state)),
    )
    pages = Path(sim.roots.sysfs) / "kernel" / "mm" / "ksm" / "pages_to_scan"

    def tick() -> None:
        tuner.tick()
        written = int(pages.read_text())
        if written != sim.pages_to_scan:
            sim.set(pages_to_scan=written)

    run_for(sim, tick, 60, 0.5)
    tuner.save(force=True, state="stopped", why="told to stop (SIGTERM or SIGINT)")
    tuner.close()
    reader = HostReader(
        sim.roots, clock=sim.clock, clock_ticks=CLOCK_TICKS, tuner_state_file=str(state)
    )
    return KsmCollection(reader)


def window_shares(cpu: list[tuple[float, int]], seconds: float, step: float) -> list[float]:
    """ksmd's share of a CPU over every window of `seconds`, from (time, CPU ns) samples
    taken every `step` seconds."""
    ticks = round(seconds / step)
    return [
        (cpu[i + ticks][1] - cpu[i][1]) / NANOSECONDS / (cpu[i + ticks][0] - cpu[i][0])
        for i in range(len(cpu) - ticks)
    ]

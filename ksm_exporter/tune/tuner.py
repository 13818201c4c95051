"""`ksm-exporter tune`: reads the host every interval, applies the advice in bounded steps.

It reads the host through the exporter's own reader (`HostReader`): each tick its
sampler reads full_scans, run, the settings and ksmd's CPU time and advances the same
scan-cost figures; every DECIDE_SECONDS a whole reading (sysfs, the per-process sweep) feeds
the same advice as `/metrics` and `status` (derive/tuning.py), and the tuner makes at most
one change
(derive/tuner_policy.py). Whatever it reads that differs from what it last wrote or found
means someone else wrote a setting: it then changes nothing more and ends (EXIT_OVERRIDDEN).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ksm_exporter.derive.scan_cost import cpu_ratio
from ksm_exporter.derive.tuner_policy import Change, TunerInput, next_change
from ksm_exporter.derive.tuning import TuningOptions, advise, host_now
from ksm_exporter.reading.host_reader import HostReader
from ksm_exporter.reading.processes import ProcessOptions
from ksm_exporter.sources.host import ScanReading
from ksm_exporter.sources.roots import Roots
from ksm_exporter.tune.ksm_writer import KsmWriter

log = logging.getLogger("ksm_exporter.tune")

DECIDE_SECONDS = 5.0  # CPU share measured over this long at one setting before the next step
# Memory to scan appeared: rmap items grew by more than this share between two decisions
# (ksmd adds one per page it looks at for the first time), or a process registered.
NEW_MEMORY_GROWTH = 0.05
BACKLOG_SCANS = 3  # full scans at the backlog pace after new memory, as the trend needs
EXIT_OVERRIDDEN = 3  # someone else wrote a setting
WATCHED = ("run", "pages_to_scan", "sleep_millisecs")


@dataclass
class NewMemory:
    """Whether memory to scan appeared, and until which full scan the backlog pace holds.

    It starts from nothing: whatever is registered when the tuner starts is memory to
    merge, scanned at the budget's pace until the trend over full scans says otherwise."""

    registered: int | None = 0
    rmap_items: int | None = 0
    until_full_scans: int | None = None

    def seen(self, registered: int | None, rmap_items: int | None, full_scans: int) -> bool:
        grew = (
            registered is not None and self.registered is not None and registered > self.registered
        ) or (
            rmap_items is not None
            and self.rmap_items is not None
            and rmap_items > self.rmap_items * (1 + NEW_MEMORY_GROWTH)
        )
        self.registered = registered if registered is not None else self.registered
        self.rmap_items = rmap_items if rmap_items is not None else self.rmap_items
        if grew:
            self.until_full_scans = full_scans + BACKLOG_SCANS
        return self.until_full_scans is not None and full_scans < self.until_full_scans


class Overridden(Exception):
    """Someone else wrote a KSM setting while the tuner ran."""


class Tuner:
    def __init__(
        self,
        roots: Roots,
        options: TuningOptions,
        *,
        dry_run: bool = False,
        clock: Callable[[], float] = time.monotonic,
        clock_ticks: int | None = None,
        writer: KsmWriter | None = None,
    ) -> None:
        self.roots = roots
        self.options = options
        self.dry_run = dry_run
        self.clock = clock
        self.writer = writer or KsmWriter(roots.sysfs)
        # Only the sums of the registered processes count here: no series, no labels.
        self.host = HostReader(
            roots,
            processes=ProcessOptions(limit=0, labels=()),
            clock=clock,
            clock_ticks=clock_ticks,
        )
        self.new_memory = NewMemory()
        self.expected: dict[str, int | None] | None = None  # the settings as last written
        self.since: ScanReading | None = None  # the first sample at the current setting
        self.decided_at: float | None = None
        self.changes: list[Change] = []

    def tick(self) -> Change | None:
        """One sample; a decision when one is due. Raises Overridden."""
        cost = self.host.sampler.tick()
        sample = cost.last
        assert sample is not None
        self.check_settings(sample)
        if self.since is None:
            self.since = sample
        if self.decided_at is not None and sample.at - self.decided_at < DECIDE_SECONDS:
            return None
        if sample.at - self.since.at < DECIDE_SECONDS:
            return None
        self.decided_at = sample.at
        change = self.decide(sample)
        if change is not None:
            self.apply(change, sample)
        return change

    def check_settings(self, sample: ScanReading) -> None:
        seen = {name: sample.number(name) for name in WATCHED}
        if self.expected is None:
            self.expected = seen
            return
        for name in WATCHED:
            if seen[name] != self.expected[name]:
                raise Overridden(
                    f"{name} changed from {self.expected[name]} to {seen[name]}, not by this tuner"
                )

    def decide(self, sample: ScanReading) -> Change | None:
        reading = self.host.read_all()
        ksm = reading.sysfs.snapshot
        host = host_now(ksm, reading.processes, self.host.kernel_hz)
        advice = advise(self.host.sampler.cost, host, self.options)
        assert self.since is not None
        now = TunerInput(
            advice=advice,
            run=sample.run,
            pages_to_scan=sample.number("pages_to_scan"),
            cpu_ratio=cpu_ratio(self.since, sample),
            new_memory=self.new_memory.seen(
                host.registered, host.rmap_items, sample.full_scans or 0
            ),
        )
        return next_change(now, self.options)

    def apply(self, change: Change, sample: ScanReading) -> None:
        before = sample.number(change.setting)
        predicted = change.predicted
        fields: dict[str, object] = {
            "setting": change.setting,
            "from": before,
            "to": change.value,
            "reason": change.reason,
        }
        if predicted is not None:
            fields["predicted_full_scan_seconds"] = round(predicted.full_scan_seconds, 3)
            fields["predicted_ksmd_cpu_ratio"] = round(predicted.cpu_ratio, 4)
        if self.dry_run:
            log.info("would change", extra=fields)
            return
        self.writer.write(change.setting, change.value)
        log.info("changed", extra=fields)
        self.changes.append(change)
        assert self.expected is not None
        self.expected[change.setting] = change.value
        self.since = None  # the CPU share is measured afresh at the new setting

    def run(self, stop: threading.Event, interval: float = 1.0) -> None:
        """Ticks every `interval` seconds until `stop` is set. Raises Overridden."""
        next_tick = time.monotonic()
        while not stop.is_set():
            self.tick()
            next_tick += interval
            stop.wait(max(0.0, next_tick - time.monotonic()))

    def close(self) -> None:
        self.host.close()

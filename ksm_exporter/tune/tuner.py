"""`ksm-exporter tune`: reads the host every interval, applies the advice in bounded steps.

It reads the host through the exporter's own reader (`HostReader`): each tick its
sampler reads full_scans, run, the settings and ksmd's CPU time and advances the same
scan-cost figures; every DECIDE_SECONDS a whole reading (sysfs, meminfo, PSI, the
per-process sweep) feeds the same advice as `/metrics` and `status` (derive/tuning.py), and
the tuner makes at most one change (derive/tuner_policy.py). Whatever it reads that differs
from what it last wrote or found means someone else wrote a setting: it then changes
nothing more and ends (EXIT_OVERRIDDEN); a dry run says so and goes on, and tells the
kernel's scan-time advisor, which rewrites pages_to_scan after each scan, from an operator.
What it wrote, and when, it keeps in a state file: a restarted tuner knows its own `run`.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ksm_exporter.derive.memory_pressure import short_of_memory
from ksm_exporter.derive.savings import memory_profit_bytes, rmap_items, saved_pages
from ksm_exporter.derive.scan_cost import cpu_ratio
from ksm_exporter.derive.tuner_policy import Change, TunerInput, next_change
from ksm_exporter.derive.tuning import TuningOptions, advise, host_now
from ksm_exporter.reading.host_reader import HostReader, HostReading
from ksm_exporter.reading.processes import ProcessOptions
from ksm_exporter.sources.host import ScanReading
from ksm_exporter.sources.ksm_files import RUN_RUNNING, RUN_UNMERGE, run_setting
from ksm_exporter.sources.memory_pressure import read_memory_pressure
from ksm_exporter.sources.process_memory import resident_pages
from ksm_exporter.sources.roots import Roots
from ksm_exporter.sources.sysfs import KsmSysfs
from ksm_exporter.sources.tuner_state import RecordedChange, TunerRecord
from ksm_exporter.tune.ksm_writer import KsmWriter
from ksm_exporter.tune.state_file import StateFile

log = logging.getLogger("ksm_exporter.tune")

DECIDE_SECONDS = 5.0  # CPU share measured over this long at one setting before the next step
RECENT_SECONDS = 10.0  # the CPU share checked against the budget: the latest this many seconds
# Memory to scan appeared: rmap items (one per page ksmd looked at) or the registered
# processes' resident memory grew by more than this share between two decisions.
NEW_MEMORY_GROWTH = 0.05
# Pages merged between two decisions, beyond this share of those already saved: memory is
# merging now, whatever the trend over full scans says yet.
MERGING_GROWTH = 0.01
MIN_NEW_PAGES = 256  # 1 MiB: growth smaller than this is noise, whatever its share
# Full scans at the backlog pace after new memory: a process that registers is put behind
# ksmd's cursor (ksm_enter() in mm/ksm.c: "to let the area settle down a little"), so the
# scan under way misses it, the next one takes its checksums and the one after merges it;
# one more for the merges to show.
BACKLOG_SCANS = 4
# Every tick, ksmd's share over the latest GUARD_WINDOW seconds at the current setting (at
# least GUARD_SECONDS of it): past GUARD_OVER times the budget pages_to_scan is lowered at
# once, not at the next decision, and the setting the measured share allows caps it for
# CEILING_SECONDS (two windows of 10 s).
GUARD_SECONDS = 2.0
GUARD_WINDOW = 3.0
GUARD_OVER = 1.25
CEILING_SECONDS = 20.0
HEARTBEAT_SECONDS = 60.0  # the state file says the tuner still decides at least this often
EXIT_OVERRIDDEN = 3  # someone else wrote a setting
WATCHED = ("run", "pages_to_scan", "sleep_millisecs")


def grew(before: int | None, after: int | None, share: float) -> bool:
    if before is None or after is None:
        return False
    return after - before > max(MIN_NEW_PAGES, share * before)


@dataclass
class NewMemory:
    """Whether memory to scan appeared, and until which full scan the backlog pace holds.

    A tuner started afresh starts from nothing: whatever is registered is memory to merge,
    scanned at the budget's pace until the trend over full scans says otherwise. A restarted
    one starts from the processes its state file says were registered: one that registered
    while no tuner ran is new."""

    pids: frozenset[int] | None = frozenset()
    resident: int | None = 0
    rmap_items: int | None = 0
    saved: int | None = None
    until_full_scans: int | None = None
    full_scans: int = 0
    reasons: list[str] = field(default_factory=list)

    def seen(
        self,
        pids: frozenset[int] | None,
        resident: int | None,
        rmap: int | None,
        saved: int | None,
        full_scans: int,
    ) -> bool:
        """Takes the figures of one decision; whether the backlog pace holds now."""
        reasons = []
        if pids is not None and self.pids is not None and pids - self.pids:
            reasons.append(f"{len(pids - self.pids)} process(es) registered with KSM")
        if grew(self.resident, resident, NEW_MEMORY_GROWTH):
            reasons.append("the registered processes' resident memory grew")
        if grew(self.rmap_items, rmap, NEW_MEMORY_GROWTH):
            reasons.append("ksmd found pages it had not seen")
        if grew(self.saved, saved, MERGING_GROWTH):
            reasons.append("pages merged since the last decision")
        self.pids = pids if pids is not None else self.pids
        self.resident = resident if resident is not None else self.resident
        self.rmap_items = rmap if rmap is not None else self.rmap_items
        self.saved = saved if saved is not None else self.saved
        if full_scans < self.full_scans and self.until_full_scans is not None:
            self.until_full_scans = full_scans + BACKLOG_SCANS  # reset by run=2
        self.full_scans = full_scans
        self.reasons = reasons
        if reasons:
            self.backlog(full_scans)
        return self.until_full_scans is not None and full_scans < self.until_full_scans

    def backlog(self, full_scans: int) -> None:
        self.until_full_scans = full_scans + BACKLOG_SCANS


def advisor_active(ksm: KsmSysfs) -> bool:
    """The kernel's scan-time advisor rewrites pages_to_scan after each full scan."""
    return ksm.advisor_mode is not None and ksm.advisor_mode.active != "none"


class Overridden(Exception):
    """Someone else wrote a KSM setting while the tuner ran."""


def without_offline(value: int | None, name: str) -> int | None:
    """`run` as an operator wrote it: KSM_RUN_OFFLINE is the kernel's own, set and cleared
    by ksm_memory_callback() around a memory hot-remove."""
    return run_setting(value) if value is not None and name == "run" else value


class Tuner:
    def __init__(
        self,
        roots: Roots,
        options: TuningOptions,
        *,
        dry_run: bool = False,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        clock_ticks: int | None = None,
        writer: KsmWriter | None = None,
        state_file: StateFile | None = None,
    ) -> None:
        self.roots = roots
        self.options = options
        self.dry_run = dry_run
        self.clock = clock
        self.wall_clock = wall_clock
        self.writer = writer or KsmWriter(roots.sysfs)
        self.state_file = None if dry_run else state_file
        # Only the sums of the registered processes count here: no series, no labels.
        self.host = HostReader(
            roots,
            processes=ProcessOptions(limit=0, labels=()),
            clock=clock,
            clock_ticks=clock_ticks,
        )
        previous = None if state_file is None else state_file.load()
        self.record = TunerRecord(
            pid=os.getpid(),
            state="tuning",
            updated_at=wall_clock(),
            written=dict(previous.written) if previous else {},
            written_at=dict(previous.written_at) if previous else {},
            changes=previous.changes if previous else 0,
            last_change=previous.last_change if previous else None,
        )
        self.new_memory = NewMemory()
        if previous is not None:  # a restart: what it saw registered before is not new
            known = frozenset(previous.registered) if previous.registered else None
            self.new_memory = NewMemory(pids=known, resident=None, rmap_items=None)
        self.expected: dict[str, int | None] | None = None  # the settings as last written
        self.since: ScanReading | None = None  # the first sample at the current setting
        self.recent: deque[ScanReading] = deque()
        self.decided_at: float | None = None
        self.saved_at: float | None = None
        self.advisor_active = advisor_active(self.host.read().sysfs.snapshot)
        self.budget = options.cpu_budget  # the budget of the latest decision
        self.raised: tuple[int, int] | None = None  # (from, to) of a raise under watch
        self.ceiling: tuple[int, float] | None = None  # (pages, until) after an undone raise
        self.changes: list[Change] = []

    def tick(self) -> Change | None:
        """One sample; a decision when one is due. Raises Overridden."""
        cost = self.host.sampler.tick()
        sample = cost.last
        assert sample is not None
        self.check_settings(sample)
        if self.since is None:
            self.since = sample
        self.recent.append(sample)
        while len(self.recent) > 2 and sample.at - self.recent[1].at >= RECENT_SECONDS:
            self.recent.popleft()
        undo = self.guard(sample)
        if undo is not None:
            self.decided_at = sample.at
            self.apply(undo, sample)
            self.save(force=True)
            return undo
        if self.decided_at is not None and sample.at - self.decided_at < DECIDE_SECONDS:
            return None
        if sample.at - self.since.at < DECIDE_SECONDS:
            return None
        self.decided_at = sample.at
        change = self.decide(sample)
        if change is not None:
            self.apply(change, sample)
        self.save(force=change is not None and not self.dry_run)
        return change

    def check_settings(self, sample: ScanReading) -> None:
        seen = {name: without_offline(sample.number(name), name) for name in WATCHED}
        if self.expected is None:
            self.expected = seen
            self.first_look(seen)
            return
        for name in WATCHED:
            if seen[name] == self.expected[name]:
                continue
            what = f"{name} changed from {self.expected[name]} to {seen[name]}, not by this tuner"
            if self.dry_run:
                self.seen_in_dry_run(name, what)
            elif name == "run" and self.expected["run"] != RUN_RUNNING and not self.ours("run"):
                log.info("KSM's run set by someone else: tuning from here", extra={"why": what})
            else:
                raise Overridden(what)
            self.expected[name] = seen[name]
            self.since = None

    def seen_in_dry_run(self, name: str, what: str) -> None:
        if name == "pages_to_scan" and self.advisor_active:
            log.debug("the kernel's scan-time advisor set pages_to_scan", extra={"why": what})
        else:
            log.warning(
                "someone else changed KSM's settings: a tuner that writes would stop here "
                "(status 3); this dry run goes on from their setting",
                extra={"why": what},
            )

    def ours(self, name: str) -> bool:
        """Whether the setting's value now is the one this tuner wrote (now or before a
        restart, from its state file)."""
        assert self.expected is not None
        return name in self.record.written and self.record.written[name] == self.expected[name]

    def first_look(self, seen: dict[str, int | None]) -> None:
        run = seen["run"]
        if run is not None and run != RUN_RUNNING:
            if self.ours("run"):
                log.info(
                    "KSM stays as this tuner left it until mergeable memory appears",
                    extra={"run": run},
                )
            else:
                log.warning(
                    "KSM is not running (run is not 1) and this tuner did not set it: it "
                    "changes nothing until someone sets run to 1",
                    extra={"run": run},
                )
        if seen["sleep_millisecs"] == 0:
            log.warning(
                "sleep_millisecs is 0: ksmd never sleeps, so pages_to_scan sets no pace and "
                "this tuner changes nothing; set sleep_millisecs (20 is the kernel's default) "
                "to let it tune",
            )

    def guard(self, sample: ScanReading) -> Change | None:
        """pages_to_scan lowered at once where ksmd's share over the latest GUARD_WINDOW
        seconds at this setting went past GUARD_OVER times the budget: a raise whose memory
        costs more than the model's (distinct pages cost more), or a cost that jumped,
        shows within seconds, not at the next decision, before a 10 s window goes far over
        the budget. A raise is undone at least to where it came from."""
        if self.dry_run or self.since is None:
            return None
        current = sample.number("pages_to_scan")
        if sample.run != RUN_RUNNING or not current or sample.number("sleep_millisecs") == 0:
            return None
        start = next(
            (s for s in self.recent if s.at >= max(self.since.at, sample.at - GUARD_WINDOW)),
            None,
        )
        if start is None or sample.at - start.at < GUARD_SECONDS:
            return None
        share = cpu_ratio(start, sample)
        if share is None or share <= self.budget * GUARD_OVER:
            return None
        pages = max(1, math.floor(current * self.budget / share))
        why = f"ksmd used {share:.1%} of a CPU over the last {sample.at - start.at:.0f} s"
        if self.raised is not None:
            before, _ = self.raised
            pages = min(pages, before)
            why += f" after pages_to_scan was raised to {current}"
        if pages >= current:
            return None
        self.raised = None
        self.ceiling = (pages, sample.at + CEILING_SECONDS)
        return Change(
            "pages_to_scan",
            pages,
            f"{why}, over {GUARD_OVER} times the {self.budget:.1%} budget: lowered at once",
            rule="over_budget",
        )

    def recent_cpu_ratio(self, sample: ScanReading) -> float | None:
        """ksmd's share of a CPU over the latest RECENT_SECONDS at the current setting."""
        assert self.since is not None
        start = next(
            (s for s in self.recent if s.at >= self.since.at and s.at < sample.at), self.since
        )
        return cpu_ratio(start, sample)

    def decide(self, sample: ScanReading) -> Change | None:
        reading = self.host.read_all()
        ksm = reading.sysfs.snapshot
        self.advisor_active = advisor_active(ksm)
        pressure = short_of_memory(reading.meminfo.meminfo, read_memory_pressure(self.roots.procfs))
        options = self.options
        self.budget = options.budget(pressure is not None)
        host = host_now(ksm, reading.processes, self.host.kernel_hz)
        advice = advise(
            self.host.sampler.cost,
            host,
            replace(options, cpu_budget=options.budget(pressure is not None)),
        )
        profit = memory_profit_bytes(ksm, sample.page_size)
        run = without_offline(sample.run, "run")
        backlog = self.memory_seen(reading, sample)
        if self.new_memory.reasons:
            log.info("memory to merge appeared", extra={"why": ", ".join(self.new_memory.reasons)})
        if run != RUN_RUNNING:  # the way back takes only what appeared since the last look
            backlog = bool(self.new_memory.reasons)
        now = TunerInput(
            advice=advice,
            run=sample.run,
            pages_to_scan=sample.number("pages_to_scan"),
            cpu_ratio=self.recent_cpu_ratio(sample),
            new_memory=backlog,
            sleep_millisecs=sample.number("sleep_millisecs"),
            run_is_ours=run is not None and self.ours("run"),
            probe_due=self.probe_due(run),
            short_of_memory=pressure is not None,
            loss_bytes=None if profit is None else max(0, -profit),
            mem_total_bytes=reading.meminfo.mem_total_bytes,
            ceiling=self.ceiling[0] if self.ceiling and sample.at < self.ceiling[1] else None,
        )
        change = next_change(now, options)
        if change is not None and pressure is not None and change.setting == "pages_to_scan":
            change = replace(change, reason=f"{change.reason}; short of memory: {pressure}")
        if (
            change is not None
            and change.rule in ("new_memory", "way_back")
            and self.new_memory.reasons
        ):
            reasons = ", ".join(self.new_memory.reasons)
            change = replace(change, reason=f"{change.reason} ({reasons})")
        return change

    def memory_seen(self, reading: HostReading, sample: ScanReading) -> bool:
        ksm = reading.sysfs.snapshot
        sweep = None if reading.processes is None else reading.processes.sweep
        pids = None
        resident = None
        if sweep is not None and sweep.fields and not sweep.unreadable:
            pids = frozenset(process.pid for process in sweep.registered)
            resident = resident_pages(self.roots.procfs, pids)
        return self.new_memory.seen(
            pids, resident, rmap_items(ksm), saved_pages(ksm), sample.full_scans or 0
        )

    def probe_due(self, run: int | None) -> bool:
        if run != RUN_UNMERGE or not self.ours("run"):
            return False
        written_at = self.record.written_at.get("run")
        return written_at is None or self.wall_clock() - written_at >= self.options.probe_seconds

    def apply(self, change: Change, sample: ScanReading) -> None:
        before = without_offline(sample.number(change.setting), change.setting)
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
        self.recent.clear()
        raised = change.setting == "pages_to_scan" and before is not None and change.value > before
        self.raised = (before, change.value) if raised and before is not None else None
        now = self.wall_clock()
        self.record = replace(
            self.record,
            written={**self.record.written, change.setting: change.value},
            written_at={**self.record.written_at, change.setting: now},
            changes=self.record.changes + 1,
            last_change=RecordedChange(
                change.setting, before, change.value, change.reason, now, change.rule
            ),
        )
        if change.setting == "run" and change.value == RUN_RUNNING:
            self.new_memory.backlog(0)  # unmerged before: full_scans starts again from 0
        elif change.setting == "run":
            self.new_memory.until_full_scans = None

    def save(self, *, force: bool = False, state: str = "tuning", why: str | None = None) -> None:
        """The state file, on a change or a stop, else at most every HEARTBEAT_SECONDS."""
        if self.state_file is None:
            return
        now = self.clock()
        if not force and self.saved_at is not None and now - self.saved_at < HEARTBEAT_SECONDS:
            return
        self.saved_at = now
        decided = None
        if self.decided_at is not None:
            decided = self.wall_clock() - (now - self.decided_at)
        pids = self.new_memory.pids
        self.record = replace(
            self.record,
            state=state,
            updated_at=self.wall_clock(),
            last_decision_at=decided,
            stopped_reason=why,
            registered=self.record.registered if pids is None else tuple(sorted(pids)),
        )
        self.state_file.save(self.record)

    def run(self, stop: threading.Event, interval: float = 1.0) -> None:
        """Ticks every `interval` seconds until `stop` is set. Raises Overridden."""
        next_tick = time.monotonic()
        while not stop.is_set():
            self.tick()
            next_tick += interval
            stop.wait(max(0.0, next_tick - time.monotonic()))

    def close(self) -> None:
        self.host.close()

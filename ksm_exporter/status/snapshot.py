"""Everything `status` shows: one reading of the host through the server's reader, plus the
sampler's readings over a window.

`build_snapshot(reader, options, reading, window)` builds it from any host reader's reading
and sampler figures (what `status --json` renders, via status/render.py's `to_json`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from ksm_exporter.derive.causes import Explanation
from ksm_exporter.derive.fork_inheritance import fork_inheritance_sentence
from ksm_exporter.derive.other_tuners import (
    RULE_OF,
    AdvisorChoice,
    HostMemory,
    RivalInputs,
    TunerChoice,
    kernel_advisor,
    rival_choices,
)
from ksm_exporter.derive.process_selection import ProcessReading
from ksm_exporter.derive.savings import Savings, derive_savings
from ksm_exporter.derive.scan_cost import ScanCost, cpu_ratio
from ksm_exporter.derive.sharing import SharingSeen
from ksm_exporter.derive.tuning import Advice, HostNow, TuningOptions, advise, host_now
from ksm_exporter.reading.cost_sampler import CostSampler
from ksm_exporter.reading.host_reader import HostReader, HostReading
from ksm_exporter.reading.processes import ProcessOptions
from ksm_exporter.sources.host import ScanReading
from ksm_exporter.sources.host_memory import QemuProcess
from ksm_exporter.sources.kernel_file import NANOSECONDS, Problem
from ksm_exporter.sources.kernel_release import osrelease_path
from ksm_exporter.sources.meminfo import Meminfo
from ksm_exporter.sources.process_identity import ProcessIdentity
from ksm_exporter.sources.procfs_mount import hidepid_problems
from ksm_exporter.sources.roots import Roots
from ksm_exporter.sources.sysfs import KsmSysfs, ksm_dir

# At most this many processes that merge little are explained by `status`, those ksmd tracks
# most pages of first: each may cost a read of its smaps.
WHY_LIMIT = 20
# How often full_scans and ksmd are sampled during the window: often enough to time full
# scans that complete within it, still only a few small reads a tick.
WINDOW_STEP_SECONDS = 0.1


# The kernel advisor's settling, simulated scan by scan (a few ms): a pure function of the
# model and the advisor's settings, which change at most once a sampler tick, so every view
# between two ticks takes the one simulation.
settled_advisor = functools.lru_cache(maxsize=8)(kernel_advisor)


class KsmUnreadable(Exception):
    """KSM cannot be read at all: the one sentence `status` exits with."""


@dataclass(frozen=True, slots=True)
class CpuWindow:
    """ksmd and full_scans at the start and end of the window, and what came of them."""

    first: ScanReading
    cost: ScanCost

    @property
    def seconds(self) -> float:
        last = self.cost.last
        return 0.0 if last is None else last.at - self.first.at

    @property
    def cpu_ratio(self) -> float | None:
        last = self.cost.last
        return None if last is None else cpu_ratio(self.first, last)

    @property
    def full_scans_completed(self) -> int | None:
        last = self.cost.last
        if last is None or last.full_scans is None or self.first.full_scans is None:
            return None
        return last.full_scans - self.first.full_scans

    @property
    def ksmd_cpu_seconds(self) -> float | None:
        last = self.cost.last
        if last is None or last.ksmd_cpu_ns is None:
            return None
        return last.ksmd_cpu_ns / NANOSECONDS

    @property
    def cpu_seconds_per_full_scan(self) -> float | None:
        """ksmd CPU over the whole window divided by the scans completed in it: unlike the
        last scan's figure, it needs only one completion."""
        last, scans = self.cost.last, self.full_scans_completed
        if last is None or not scans or scans < 0:
            return None
        if last.ksmd_cpu_ns is None or self.first.ksmd_cpu_ns is None:
            return None
        if last.ksmd_pid != self.first.ksmd_pid:
            return None
        return (last.ksmd_cpu_ns - self.first.ksmd_cpu_ns) / (NANOSECONDS * scans)


@dataclass(frozen=True, slots=True)
class Tuning:
    """The advice, and what the tuners operators run today would set instead."""

    options: TuningOptions
    advice: Advice
    ksm_dir: str  # where the settings are written
    # The other tuners that run here, by the key of derive.other_tuners.RIVALS: their pid,
    # and what their rule gives now, the cause of the settings they write.
    running: dict[str, int]
    others: dict[str, TunerChoice]
    kernel_advisor: AdvisorChoice | None


@dataclass(frozen=True, slots=True)
class Explained:
    """Why a process or VM merges little (derive/causes.py), and who it is."""

    explanation: Explanation
    identity: ProcessIdentity


@dataclass(frozen=True, slots=True)
class Snapshot:
    ksm: KsmSysfs
    savings: Savings
    mem_total_bytes: int | None
    page_size: int
    window: CpuWindow
    processes: ProcessReading | None
    problems: tuple[Problem, ...]
    tuning: Tuning | None = None
    why: tuple[Explained, ...] = ()  # the processes and VMs that merge little, by pid
    sharing: SharingSeen | None = None  # the last sharing audit, where one has run


def take_snapshot(
    roots: Roots,
    window_seconds: float = 1.0,
    top: int = 10,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    page_size: int | None = None,
    clock_ticks: int | None = None,
    tuning: TuningOptions | None = None,
) -> Snapshot:
    """Reads the host through the server's reader (`HostReader`): one reading of every
    source, then the sampler's readings over the window, fed to the same cost code.

    Raises KsmUnreadable where the kernel's KSM directory cannot be read.
    """
    reader = HostReader(
        roots, page_size, ProcessOptions(limit=top), clock=clock, clock_ticks=clock_ticks
    )
    try:
        reading = reader.read_all()
        if not reading.sysfs.snapshot.available:
            raise KsmUnreadable(no_ksm_sentence(roots.sysfs, reading.sysfs.problems))
        if reading.processes is not None:  # every registered process, not only the top ones
            registered = reading.processes.sweep.registered
            reading = reader.explain_merging_little(reading, registered, WHY_LIMIT)
        window = watch_ksmd(reader.sampler, window_seconds, sleep)
        return build_snapshot(reader, tuning or TuningOptions(), reading, window)
    finally:
        reader.close()


def build_snapshot(
    reader: HostReader, options: TuningOptions, reading: HostReading, window: CpuWindow
) -> Snapshot:
    """The status document's content from one reading of the host and the sampler's figures
    over `window`: what `status` shows, and what the server shows from its own reader."""
    ksm = reading.sysfs.snapshot
    processes = reading.processes
    assert processes is not None  # the reader sweeps processes: status asks it to
    page_size = reader.page_size
    mem_total = reading.meminfo.mem_total_bytes
    now = settings_at_end(host_now(ksm, processes, reader.kernel_hz), window)
    advice = advise(window.cost, now, options)
    ksmd_problems = () if reading.ksmd is None else reading.ksmd.problems
    explained = reader.explain_unregistered_guests(reading)
    why = tuple(
        Explained(explanation, reader.identity(explained, pid))
        for pid, explanation in sorted((explained.explanations or {}).items())
        if explanation.reason != "merges_well"
    )
    return Snapshot(
        ksm=ksm,
        savings=derive_savings(ksm, page_size, mem_total),
        mem_total_bytes=mem_total,
        page_size=page_size,
        window=window,
        processes=processes,
        problems=(
            *reading.sysfs.problems,
            *reading.meminfo.problems,
            *ksmd_problems,
            *processes.problems,
            *hidepid_problems(reader.roots.procfs),
            *fork_inheritance_problems(reader.roots.procfs, reader.kernel_release),
        ),
        tuning=compare_tuners(
            reader.roots,
            ksm,
            now,
            advice,
            options,
            meminfo=reading.meminfo.meminfo,
            qemu=reader.read_qemu_processes(),
            rivals=reader.read_rival_tuners(),
        ),
        why=why,
    )


def fork_inheritance_problems(procfs_root: str, release: str | None) -> tuple[Problem, ...]:
    """A kernel the lab saw give a forked child its parent's KSM counters, as a problem
    beside the unreadable files: the per-process figures may count pages twice."""
    sentence = None if release is None else fork_inheritance_sentence(release)
    if release is None or sentence is None:
        return ()
    return (Problem(osrelease_path(procfs_root), release, sentence),)


def settings_at_end(host: HostNow, window: CpuWindow) -> HostNow:
    """The settings the window's last sample saw: they may have changed while it watched."""
    last = window.cost.last
    if last is None or last.ksm is None:
        return host
    return replace(
        host,
        run=last.run,
        pages_to_scan=last.number("pages_to_scan"),
        sleep_millisecs=last.number("sleep_millisecs"),
    )


def compare_tuners(
    roots: Roots,
    ksm: KsmSysfs,
    now: HostNow,
    advice: Advice,
    options: TuningOptions,
    *,
    meminfo: Meminfo,
    qemu: tuple[QemuProcess, ...] | None,
    rivals: list[tuple[int, str]],
) -> Tuning:
    """The advice beside what the other tuners that run here (`rivals`, (pid, name)) set now
    by their rules, and where the kernel's advisor would settle, from the settings `now`
    (the window's last sample's). A tuner that does not run here is not modelled."""
    running = {RULE_OF[name]: pid for pid, name in sorted(rivals, reverse=True) if name in RULE_OF}
    model = None if advice.not_holding else advice.model  # what predicts: none where it fails
    memory = HostMemory(meminfo.mem_total_bytes, meminfo.free_bytes, meminfo.available_bytes, qemu)
    inputs = RivalInputs(memory, now.run, now.pages_to_scan, now.sleep_millisecs, model)
    advisor = None
    if model is not None:
        advisor = settled_advisor(
            model,
            ksm.advisor_target_scan_time,
            ksm.advisor_max_cpu,
            ksm.advisor_min_pages_to_scan,
            ksm.advisor_max_pages_to_scan,
        )
    choices = {key: choice for key, choice in rival_choices(inputs).items() if key in running}
    return Tuning(options, advice, ksm_dir(roots.sysfs), running, choices, advisor)


def watch_ksmd(sampler: CostSampler, seconds: float, sleep: Callable[[float], None]) -> CpuWindow:
    """The sampler's ticks over `seconds`, from a fresh start."""
    cost = sampler.tick()
    first = cost.last
    assert first is not None
    deadline = first.at + seconds
    while True:
        last = cost.last
        remaining = deadline - (first.at if last is None else last.at)
        if remaining <= 1e-9:
            break
        sleep(min(WINDOW_STEP_SECONDS, remaining))
        cost = sampler.tick()
    return CpuWindow(first, cost)


def no_ksm_sentence(sysfs_root: str, problems: tuple[Problem, ...]) -> str:
    directory = ksm_dir(sysfs_root)
    if problems:
        return f"cannot read {directory}: {problems[0].reason}."
    return f"this kernel has no KSM: {directory} does not exist."

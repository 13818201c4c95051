"""Reads what derive/causes.py's chain asks for, one process at a time, and only that.

`Explainer.explain(pid)` reads the process's ksm_stat and command line, then runs the chain;
each time the chain answers `Needs(...)` the one input it names is read (smaps or
smaps_rollup, the systemd unit, THP's mode, vmstat) and the chain runs again. A process that
exits meanwhile is said to have exited; a file that cannot be read is named with the reason.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from ksm_exporter.derive.causes import (
    Explanation,
    HostFacts,
    Needs,
    ProcessFacts,
    TunerAtWork,
    explain,
)
from ksm_exporter.derive.other_tuners import (
    RIVALS,
    RULE_OF,
    HostMemory,
    RivalInputs,
    rival_choices,
)
from ksm_exporter.sources.host_memory import QemuProcess
from ksm_exporter.sources.kernel_file import (
    BadValue,
    os_error_reason,
    read_bytes,
    show_value,
)
from ksm_exporter.sources.ksm_stat import KsmStat, parse_ksm_stat, parse_merging_pages
from ksm_exporter.sources.meminfo import Meminfo
from ksm_exporter.sources.process_identity import cgroup_v2_path, qemu_guest_name
from ksm_exporter.sources.qemu_command_line import qemu_mem_merge_off
from ksm_exporter.sources.roots import Roots
from ksm_exporter.sources.smaps import (
    MemorySizes,
    MergeableAreas,
    Unreadable,
    read_mergeable_areas,
    read_smaps_rollup,
)
from ksm_exporter.sources.sysfs import KsmSysfs, ksm_dir
from ksm_exporter.sources.systemd_unit import read_memory_ksm
from ksm_exporter.sources.thp import read_huge_pages, thp_dir
from ksm_exporter.sources.vmstat import read_ksm_events

_MAX_CAUSE_ROUNDS = 8  # more than the chain has inputs: a guard, never reached


def read_process_ksm_stat(  # noqa: PLR0911 (one return a way the file can fail)
    procfs_root: str, pid: int
) -> KsmStat | Unreadable | None:
    """The process's counters; None when it exited; Unreadable for a kernel thread, a
    kernel without ksm_stat or ksm_merging_pages, or no permission."""
    directory = os.path.join(procfs_root, str(pid))
    path = os.path.join(directory, "ksm_stat")
    try:
        raw = read_bytes(path)
        if raw is None:
            if not os.path.isdir(directory):
                return None
            path = os.path.join(directory, "ksm_merging_pages")
            raw = read_bytes(path)
            if raw is None:
                return Unreadable(path, "this kernel shows no KSM counters per process")
            return parse_merging_pages(raw)
    except OSError as err:
        if not os.path.isdir(directory):
            return None
        return Unreadable(path, os_error_reason(err))
    if not raw:
        return Unreadable(path, "empty: the process has no memory (a kernel thread or a zombie)")
    try:
        stat = parse_ksm_stat(raw)
    except BadValue as err:
        return Unreadable(path, f"{show_value(raw)}: {err}")
    if stat.merging_pages is None:  # 6.1 keeps it in a file of its own
        try:
            merging = read_bytes(os.path.join(directory, "ksm_merging_pages"))
            if merging:
                stat = stat.with_values(
                    merging_pages=parse_merging_pages(merging).merging_pages or 0
                )
        except (OSError, BadValue):
            pass
    return stat


def tuners_at_work(
    ksm: KsmSysfs,
    meminfo: Meminfo,
    running: list[tuple[int, str]],
    qemu: Callable[[], tuple[QemuProcess, ...] | None],
) -> tuple[TunerAtWork, ...]:
    """The tuners that run on this host (`running`, sources/rival_tuners.py), each with what
    its rule gives now, and the kernel's advisor where it is active; a tuner that does not
    run here is not listed. `qemu` is read only where a tuner runs."""
    found: list[TunerAtWork] = []
    if running:
        memory = HostMemory(
            meminfo.mem_total_bytes, meminfo.free_bytes, meminfo.available_bytes, qemu()
        )
        inputs = RivalInputs(memory, ksm.run, ksm.pages_to_scan, ksm.sleep_millisecs)
        choices = rival_choices(inputs)
        names = {rival.key: rival.name for rival in RIVALS}
        for pid, name in running:
            key = RULE_OF.get(name)
            choice = choices.get(key) if key else None
            shown = f"{name} ({names[key]}'s rule)" if key and names[key] != name else name
            found.append(TunerAtWork(shown, pid, choice))
    mode = ksm.advisor_mode
    if mode is not None and mode.scan_time:
        found.append(
            TunerAtWork(
                "the kernel's scan-time advisor",
                None,
                rule=(
                    "it sets pages_to_scan after each full scan, aiming at a full scan every "
                    f"{ksm.advisor_target_scan_time} s within {ksm.advisor_max_cpu}% of a CPU"
                ),
            )
        )
    return tuple(found)


@dataclass(frozen=True, slots=True)
class _Kept:
    """What a walk of one process's memory found, and when."""

    started: bytes  # field 22 of <pid>/stat: a new process under the same pid differs
    at: float
    facts: ProcessFacts


@dataclass
class MemoryKept:
    """The inputs that walk a process's page tables (smaps, smaps_rollup) or read its unit,
    kept for `seconds` per process: a scrape explains the same processes again and again,
    and their registered size changes slowly. Processes that are gone are forgotten."""

    seconds: float
    clock: Callable[[], float]
    kept: dict[int, _Kept] = field(default_factory=dict)

    def get(self, procfs_root: str, pid: int) -> tuple[bytes, ProcessFacts | None]:
        started = process_start(procfs_root, pid)
        kept = self.kept.get(pid)
        if kept is None or kept.started != started or self.clock() - kept.at >= self.seconds:
            return started, None
        return started, kept.facts

    def put(self, pid: int, started: bytes, facts: ProcessFacts) -> None:
        if started:
            self.kept[pid] = _Kept(started, self.clock(), facts)

    def forget_all_but(self, pids: set[int]) -> None:
        for pid in self.kept.keys() - pids:
            del self.kept[pid]


def process_start(procfs_root: str, pid: int) -> bytes:
    """The start time of the process (field 22 of stat, after the command name), or b""."""
    try:
        raw = read_bytes(os.path.join(procfs_root, str(pid), "stat")) or b""
    except OSError:
        return b""
    fields = raw.rpartition(b")")[2].split()
    return fields[19] if len(fields) > 19 else b""


@dataclass
class Explainer:
    """Explains processes against one reading of the host; THP's mode and vmstat are read
    at most once per Explainer, a process's memory at most once per `kept.seconds`."""

    roots: Roots
    host: HostFacts
    find_tuners: Callable[[], tuple[TunerAtWork, ...]] = tuple
    unit_root: str = "/"
    kept: MemoryKept | None = None

    @classmethod
    def for_host(
        cls,
        roots: Roots,
        ksm: KsmSysfs,
        page_size: int,
        tuners: Callable[[], tuple[TunerAtWork, ...]] = tuple,
        *,
        unit_root: str = "/",
        kept: MemoryKept | None = None,
    ) -> Explainer:
        host = HostFacts(
            ksm,
            ksm_dir(roots.sysfs),
            page_size,
            vmstat_path=os.path.join(roots.procfs, "vmstat"),
            thp_path=os.path.join(thp_dir(roots.sysfs), "enabled"),
        )
        return cls(roots, host, tuners, unit_root, kept)

    def explain(self, pid: int, stat: KsmStat | Unreadable | None = None) -> Explanation:
        directory = self.roots.process(pid)
        if stat is None:
            stat = read_process_ksm_stat(self.roots.procfs, pid)
        cmdline_path = os.path.join(directory, "cmdline")
        facts = ProcessFacts(pid, stat, os.path.join(directory, "ksm_stat"), cmdline_path)
        started, earlier = b"", None
        if self.kept is not None:
            started, earlier = self.kept.get(self.roots.procfs, pid)
            if earlier is not None:
                facts = replace(
                    facts,
                    memory=earlier.memory,
                    memory_path=earlier.memory_path,
                    memory_ksm=earlier.memory_ksm,
                )
        for _ in range(_MAX_CAUSE_ROUNDS):
            answer = explain(facts, self.host)
            if not isinstance(answer, Needs):
                if self.kept is not None and earlier is None and facts.stat is not None:
                    self.kept.put(pid, started, facts)
                return answer
            facts = self._read(answer, facts)
        raise AssertionError("the chain asked for more inputs than it has")

    def _mem_merge_off(self, path: str) -> str | None:
        try:
            raw = read_bytes(path)
        except OSError:
            return None
        return qemu_mem_merge_off(raw) if raw else None

    def _read(self, needs: Needs, facts: ProcessFacts) -> ProcessFacts:
        procfs = self.roots.procfs
        if needs.what == "huge_pages":
            self.host = replace(self.host, huge_pages=read_huge_pages(self.roots.sysfs))
        elif needs.what == "command_line":
            facts = replace(facts, qemu_mem_merge_off=self._mem_merge_off(facts.cmdline_path))
        elif needs.what == "tuners":
            self.host = replace(self.host, tuners=self.find_tuners())
        elif needs.what == "events":
            self.host = replace(self.host, events=read_ksm_events(procfs))
        elif needs.what == "memory_ksm":
            facts = replace(
                facts, memory_ksm=read_memory_ksm(self._cgroup(facts.pid), self.unit_root)
            )
        else:
            facts = self._read_memory(facts)
        return facts

    def _read_memory(self, facts: ProcessFacts) -> ProcessFacts:
        """smaps_rollup where ksm_merge_any registers every area (one block to format), else
        the `mg` areas of smaps."""
        stat = facts.stat
        whole = isinstance(stat, KsmStat) and stat.get("merge_any") is True
        directory = self.roots.process(facts.pid)
        memory: MergeableAreas | MemorySizes | Unreadable
        if whole:
            memory = read_smaps_rollup(self.roots.procfs, facts.pid)
            path = os.path.join(directory, "smaps_rollup")
        else:
            memory = read_mergeable_areas(self.roots.procfs, facts.pid)
            path = os.path.join(directory, "smaps")
        if isinstance(memory, Unreadable) and memory.vanished:
            return replace(facts, stat=None)
        return replace(facts, memory=memory, memory_path=path)

    def _cgroup(self, pid: int) -> str:
        try:
            raw = read_bytes(os.path.join(self.roots.process(pid), "cgroup"))
        except OSError:
            return ""
        return cgroup_v2_path(raw) if raw else ""


def pids_of_vm(procfs_root: str, name: str) -> list[int]:
    """The QEMU processes whose guest is named `name` (process_identity's vm label: `-name
    guest=NAME`, or KubeVirt's VMI name); reads every process's command line, so only for a
    question asked by name."""
    try:
        pids = sorted(int(entry) for entry in os.listdir(procfs_root) if entry.isdigit())
    except OSError:
        return []
    found = []
    for pid in pids:
        directory = os.path.join(procfs_root, str(pid))
        try:
            cmdline = read_bytes(os.path.join(directory, "cmdline"))
            cgroup = read_bytes(os.path.join(directory, "cgroup")) or b""
        except OSError:
            continue
        if cmdline and qemu_guest_name(cmdline, cgroup) == name:
            found.append(pid)
    return found

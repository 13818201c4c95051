"""The ksmd kernel thread: found once under `<procfs>`, then its CPU time read each time.

CPU time comes from `<pid>/schedstat` (nanoseconds, what the kernel's own scan-time advisor
uses); only where that file is missing from utime + stime of `<pid>/stat`, in clock ticks of
10 ms or so, too coarse to time a scan that takes a fraction of a second. schedstat's second
field is the time ksmd spent runnable but waiting for a CPU (sched_info's run_delay): on a busy
host it lengthens every batch, and so the full scan, without adding CPU.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from ksm_exporter.sources.kernel_file import (
    NANOSECONDS,
    PID_VANISHED,
    BadValue,
    Problem,
    os_error_reason,
    read_bytes,
    show_value,
)

KSMD_COMM = "ksmd"
PF_KTHREAD = 0x00200000  # `flags` bit of kernel threads: a user process may call itself ksmd
# Fields of `<pid>/stat` (1-based, as in proc(5)) counted from the state, field 3, which
# follows the last ')': comm, field 2, may itself hold spaces and parentheses.
_FLAGS, _UTIME, _STIME = 9 - 3, 14 - 3, 15 - 3
# Without ksmd in sight (another pid namespace), look again at most this often: a search
# reads the stat of every process.
SEARCH_BACKOFF_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class ThreadStat:
    """What the exporter needs from one `<pid>/stat` line."""

    comm: str
    flags: int
    cpu_ticks: int  # utime + stime, in clock ticks (SC_CLK_TCK)

    @property
    def is_ksmd(self) -> bool:
        return self.comm == KSMD_COMM and bool(self.flags & PF_KTHREAD)


def parse_stat(raw: bytes) -> ThreadStat:
    opening, closing = raw.find(b"("), raw.rfind(b")")
    if opening < 0 or closing < opening:
        raise BadValue("no (comm) field")
    fields = raw[closing + 1 :].split()
    if len(fields) <= _STIME:
        raise BadValue("fewer fields than utime and stime")
    numbers = (fields[_FLAGS], fields[_UTIME], fields[_STIME])
    if not all(number.isdigit() for number in numbers):
        raise BadValue("flags, utime or stime is not an unsigned integer")
    flags, utime, stime = (int(number) for number in numbers)
    comm = raw[opening + 1 : closing].decode("utf-8", errors="replace")
    return ThreadStat(comm=comm, flags=flags, cpu_ticks=utime + stime)


def parse_schedstat(raw: bytes) -> tuple[int, int | None]:
    """The first two fields of `<pid>/schedstat` (fs/proc/base.c proc_pid_schedstat): time
    spent on a CPU and time spent waiting on a run queue, in nanoseconds; the second None
    where it is missing or not a number."""
    fields = raw.split()
    if not fields or not fields[0].isdigit():
        raise BadValue("the first field is not an unsigned integer")
    delay = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None
    return int(fields[0]), delay


@dataclass(frozen=True, slots=True)
class Ksmd:
    pid: int
    cpu_ns: int  # from schedstat, or utime + stime ticks converted
    run_delay_ns: int | None = None  # from schedstat; None without it


@dataclass(frozen=True, slots=True)
class KsmdReading:
    """`ksmd` is None when no ksmd thread is in sight (no KSM, or another pid namespace)."""

    ksmd: Ksmd | None
    problems: tuple[Problem, ...] = ()


def stat_path(procfs_root: str, pid: int) -> str:
    return os.path.join(procfs_root, str(pid), "stat")


def read_thread(procfs_root: str, pid: int) -> ThreadStat | None:
    """The pid's stat, or None when the pid is gone or its stat does not parse.

    Raises OSError for anything but a vanished pid (permission, I/O).
    """
    try:
        raw = read_bytes(stat_path(procfs_root, pid))
    except OSError as err:
        if err.errno in PID_VANISHED:
            return None
        raise
    if raw is None:
        return None
    try:
        return parse_stat(raw)
    except BadValue:
        return None


def find_ksmd(procfs_root: str) -> int | None:
    """The pid of the ksmd kernel thread, or None.

    Pids are tried in ascending order: ksmd starts early at boot, so the search usually ends
    after a few dozen small reads.
    """
    try:
        names = os.listdir(procfs_root)
    except OSError:
        return None
    for pid in sorted(int(name) for name in names if name.isdigit()):
        try:
            thread = read_thread(procfs_root, pid)
        except OSError:
            continue
        if thread is not None and thread.is_ksmd:
            return pid
    return None


def read_cpu_ns(
    procfs_root: str, pid: int, thread: ThreadStat, clock_ticks: int
) -> tuple[int, int | None] | Problem | None:
    """CPU and run-queue delay nanoseconds, a problem, or None when the pid is gone."""
    path = os.path.join(procfs_root, str(pid), "schedstat")
    try:
        raw = read_bytes(path)
    except OSError as err:
        if err.errno in PID_VANISHED:
            return None
        return Problem(path, "", os_error_reason(err))
    if raw is None:  # a kernel without CONFIG_SCHED_INFO: clock ticks it is
        return thread.cpu_ticks * NANOSECONDS // clock_ticks, None
    try:
        return parse_schedstat(raw)
    except BadValue as err:
        return Problem(path, show_value(raw), str(err))


def read_ksmd_at(procfs_root: str, pid: int, clock_ticks: int) -> KsmdReading | None:
    """ksmd's CPU time when `pid` is still ksmd; None when it is not (gone or reused)."""
    path = stat_path(procfs_root, pid)
    try:
        raw = read_bytes(path)
        thread = None if raw is None else parse_stat(raw)
    except OSError as err:
        if err.errno in PID_VANISHED:
            return None
        return KsmdReading(None, (Problem(path, "", os_error_reason(err)),))
    except BadValue as err:
        return KsmdReading(None, (Problem(path, show_value(raw or b""), str(err)),))
    if thread is None or not thread.is_ksmd:
        return None
    cpu = read_cpu_ns(procfs_root, pid, thread, clock_ticks)
    if isinstance(cpu, Problem):
        return KsmdReading(None, (cpu,))
    return None if cpu is None else KsmdReading(Ksmd(pid, *cpu))


class KsmdLocator:
    """Remembers ksmd's pid and looks for it again only when that pid stops being ksmd."""

    def __init__(
        self,
        procfs_root: str,
        clock: Callable[[], float] = time.monotonic,
        clock_ticks: int | None = None,
    ) -> None:
        self.procfs_root = procfs_root
        self.clock = clock
        self.clock_ticks = clock_ticks or os.sysconf("SC_CLK_TCK")
        self.pid: int | None = None
        self._last_failed_search: float | None = None

    def read(self) -> KsmdReading:
        """Never raises."""
        if self.pid is not None:
            reading = read_ksmd_at(self.procfs_root, self.pid, self.clock_ticks)
            if reading is not None:
                return reading
            self.pid = None
        if not self._may_search():
            return KsmdReading(None)
        self.pid = find_ksmd(self.procfs_root)
        if self.pid is None:
            self._last_failed_search = self.clock()
            return KsmdReading(None)
        self._last_failed_search = None
        return read_ksmd_at(self.procfs_root, self.pid, self.clock_ticks) or KsmdReading(None)

    def _may_search(self) -> bool:
        last = self._last_failed_search
        return last is None or self.clock() - last >= SEARCH_BACKOFF_SECONDS

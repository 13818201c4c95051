"""Every process's KSM counters, read from `<procfs>/<pid>/ksm_stat` on each collection.

This is the exporter's hot path: a host may run thousands of processes. Most of the cost is
the kernel's (path walk, open, the counters, a walk of the process's memory areas), so the
files stay open between sweeps and are read again with one `pread` each, and the pids are
split across a few threads, as the GIL is released while the kernel works. Idle processes
all hand back the same bytes, which are parsed once and then recognised by a set lookup.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

from ksm_exporter.sources.kernel_file import (
    PID_VANISHED,
    BadValue,
    Problem,
    close_all,
    os_error_reason,
    show_value,
)
from ksm_exporter.sources.ksm_stat import (
    PROCESS_FIELDS,
    KsmStat,
    ProcessField,
    keys_of,
    parse_ksm_stat,
    parse_merging_pages,
)

_STAT = b"/ksm_stat"
_MERGING = b"/ksm_merging_pages"
_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC
_READ_SIZE = 4096  # ksm_stat is under 200 bytes; a page is what seq_file hands out at once
_IDLE_MEMO_LIMIT = 64
_PIDS_PER_THREAD = 256  # below this a thread hop costs more than it saves


@dataclass(frozen=True, slots=True)
class ProcessKsm:
    pid: int
    stat: KsmStat


@dataclass(frozen=True, slots=True)
class ProcessSweep:
    """What one sweep found.

    `registered` holds only processes KSM tracks; the counts say what happened to the rest.
    `fields` names the counters this kernel reports, so absent ones are omitted, not 0.
    """

    registered: tuple[ProcessKsm, ...] = ()
    scanned: int = 0
    without_memory: int = 0  # kernel threads and zombies: empty ksm_stat
    vanished: int = 0
    unreadable: int = 0
    fields: frozenset[str] = frozenset()
    problems: tuple[Problem, ...] = ()


@dataclass(slots=True)
class _Tally:
    registered: list[ProcessKsm] = field(default_factory=list)
    without_memory: int = 0
    vanished: int = 0
    unreadable: int = 0
    fields: set[str] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)


class ProcessSweeper:
    """Sweeps `<procfs>/<pid>/ksm_stat`, keeping each file open from one sweep to the next.

    A seq_file read at offset 0 runs the kernel's show function again, so `pread` on a file
    kept open gives fresh counters without the path walk, open and close that cost as much
    as the read itself. The open file belongs to the process, not to its pid number: once
    the process exits, reads fail with ESRCH, and a new process that reuses the pid is opened
    afresh. Each kept file holds about 4.5 KiB of kernel memory (its seq_file page buffer),
    so at most `keep_limit` are kept; the rest are opened and closed on each sweep.
    """

    def __init__(
        self,
        procfs_root: str,
        helpers: Executor | None = None,
        threads: int = 1,
        keep_limit: int = 0,
        fields: tuple[ProcessField, ...] = PROCESS_FIELDS,
    ) -> None:
        self.root = os.fsencode(procfs_root)
        self._keys = keys_of(fields)
        self.helpers = helpers
        self.threads = max(1, threads)
        self.keep_limit = keep_limit
        self._kept: dict[bytes, int] = {}  # pid -> its ksm_stat, open
        weakref.finalize(self, close_all, self._kept)
        # Content of idle processes (nothing registered) -> the fields it names.
        self._idle: dict[bytes, frozenset[str]] = {}

    def sweep(self) -> ProcessSweep:
        try:
            root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as err:
            return ProcessSweep(problems=(self._problem(b"", err),))
        try:
            try:
                pids = [name for name in os.listdir(self.root) if name.isdigit()]
            except OSError as err:
                return ProcessSweep(problems=(self._problem(b"", err),))
            tallies = self._sweep_parts(root_fd, pids)
        finally:
            os.close(root_fd)
        self._forget_all_but(pids)
        return self._merge(len(pids), tallies)

    def close(self) -> None:
        close_all(self._kept)

    def _forget_all_but(self, pids: Iterable[bytes]) -> None:
        for pid in self._kept.keys() - set(pids):
            os.close(self._kept.pop(pid))

    def _sweep_parts(self, root_fd: int, pids: list[bytes]) -> list[_Tally]:
        parts = min(self.threads, len(pids) // _PIDS_PER_THREAD) if self.helpers else 1
        if parts <= 1 or self.helpers is None:
            return [self._sweep_pids(root_fd, pids)]
        # Interleaved slices: neighbouring pids (a service's workers) land on every thread.
        futures = [
            self.helpers.submit(self._sweep_pids, root_fd, pids[i::parts]) for i in range(1, parts)
        ]
        first = self._sweep_pids(root_fd, pids[0::parts])
        return [first, *(future.result() for future in futures)]

    def _sweep_pids(self, root_fd: int, pids: Sequence[bytes]) -> _Tally:
        tally = _Tally()
        idle = self._idle
        idle_seen: set[bytes] = set()
        kept, pread = self._kept, os.pread
        for pid in pids:
            fd = kept.get(pid)
            raw: bytes | None
            if fd is None:
                raw = self._open_and_read(root_fd, pid, tally)
            else:
                try:
                    raw = pread(fd, _READ_SIZE, 0)
                except OSError:  # that process is gone; the pid may be another's by now
                    os.close(kept.pop(pid))
                    raw = self._open_and_read(root_fd, pid, tally)
            if raw is None:
                continue
            if not raw:
                tally.without_memory += 1
            elif raw in idle:
                idle_seen.add(raw)
            else:
                self._parse(root_fd, pid, raw, tally)
        for raw in idle_seen:
            tally.fields.update(idle.get(raw, ()))
        return tally

    def _open_and_read(self, root_fd: int, pid: bytes, tally: _Tally) -> bytes | None:
        """The first read of a process's ksm_stat; None with the reason counted in the tally."""
        try:
            fd = os.open(pid + _STAT, _OPEN_FLAGS, dir_fd=root_fd)
        except FileNotFoundError:
            self._without_ksm_stat(root_fd, pid, tally)
            return None
        except PermissionError:
            tally.unreadable += 1
            return None
        except OSError as err:
            tally.problems.append(self._problem(pid + _STAT, err))
            return None
        try:
            raw = os.read(fd, _READ_SIZE)
        except OSError as err:
            os.close(fd)
            if err.errno in PID_VANISHED:
                tally.vanished += 1
            else:
                tally.problems.append(self._problem(pid + _STAT, err))
            return None
        if len(self._kept) < self.keep_limit:
            self._kept[pid] = fd
        else:
            os.close(fd)
        return raw

    def _parse(self, root_fd: int, pid: bytes, raw: bytes, tally: _Tally) -> None:
        try:
            stat = parse_ksm_stat(raw, self._keys)
        except BadValue as err:
            tally.problems.append(Problem(self._path(pid + _STAT), show_value(raw), str(err)))
            return
        present = stat.present()
        tally.fields.update(present)
        if not stat.registered:
            if len(self._idle) >= _IDLE_MEMO_LIMIT:
                self._idle.clear()
            self._idle[raw] = present
            return
        if stat.merging_pages is None:  # 6.1 keeps it in a file of its own; 6.12 has the line
            merging = self._read_merging_pages(root_fd, pid, tally)
            if merging is not None and merging.merging_pages is not None:
                tally.fields.add("merging_pages")
                stat = stat.with_values(merging_pages=merging.merging_pages)
        tally.registered.append(ProcessKsm(int(pid), stat))

    def _without_ksm_stat(self, root_fd: int, pid: bytes, tally: _Tally) -> None:
        """A pid that exited since the listing, or a kernel older than 6.1."""
        try:
            os.stat(pid, dir_fd=root_fd)
        except OSError:
            tally.vanished += 1
            return
        stat = self._read_merging_pages(root_fd, pid, tally)
        if stat is not None:
            tally.fields.add("merging_pages")
            if stat.registered:
                tally.registered.append(ProcessKsm(int(pid), stat))

    def _read_merging_pages(self, root_fd: int, pid: bytes, tally: _Tally) -> KsmStat | None:
        path = pid + _MERGING
        raw = self._read_small(root_fd, path, tally)
        if not raw:
            return None
        try:
            return parse_merging_pages(raw)
        except BadValue as err:
            tally.problems.append(Problem(self._path(path), show_value(raw), str(err)))
            return None

    def _read_small(self, root_fd: int, path: bytes, tally: _Tally) -> bytes | None:
        """The file's content, or None, with what went wrong counted in the tally."""
        try:
            fd = os.open(path, _OPEN_FLAGS, dir_fd=root_fd)
        except FileNotFoundError:
            return None  # no such counter on this kernel, or the process is gone
        except PermissionError:
            tally.unreadable += 1
            return None
        except OSError as err:
            tally.problems.append(self._problem(path, err))
            return None
        try:
            raw = os.read(fd, _READ_SIZE)
        except OSError as err:
            if err.errno in PID_VANISHED:
                tally.vanished += 1
            else:
                tally.problems.append(self._problem(path, err))
            return None
        finally:
            os.close(fd)
        if not raw:
            tally.without_memory += 1
        return raw

    def _path(self, relative: bytes) -> str:
        return os.fsdecode(os.path.join(self.root, relative) if relative else self.root)

    def _problem(self, relative: bytes, err: OSError) -> Problem:
        return Problem(self._path(relative), "", os_error_reason(err))

    @staticmethod
    def _merge(scanned: int, tallies: Iterable[_Tally]) -> ProcessSweep:
        registered: list[ProcessKsm] = []
        problems: list[Problem] = []
        present: set[str] = set()
        without_memory = vanished = unreadable = 0
        for tally in tallies:
            registered.extend(tally.registered)
            problems.extend(tally.problems)
            present |= tally.fields
            without_memory += tally.without_memory
            vanished += tally.vanished
            unreadable += tally.unreadable
        registered.sort(key=lambda process: process.pid)
        return ProcessSweep(
            registered=tuple(registered),
            scanned=scanned,
            without_memory=without_memory,
            vanished=vanished,
            unreadable=unreadable,
            fields=frozenset(present),
            problems=tuple(problems),
        )

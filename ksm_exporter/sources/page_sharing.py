"""Which KSM frames each registered process maps: mergeable ranges, their frames, their flags.

For every process registered with KSM (sources/process_sweep.py), its mergeable ranges
(sources/smaps.py), the frames of their present pages (sources/pagemap.py), then
the flags of the distinct frames found (sources/kpageflags.py), so the reading grows with the
registered memory, never with all of RAM. Two processes that map the same KSM frame share
that page: each mapping is one rmap_item of the frame's stable node in mm/ksm.c.

KSM keeps merging while this reads: pages_shared and pages_sharing are read before and after,
so the reader can say how far the picture may be off. Nothing here raises: a process gone,
unreadable or without smaps is recorded with the reason, and the reading is marked partial.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ksm_exporter.sources.kpageflags import read_frame_flags
from ksm_exporter.sources.pagemap import ProcessFrames, read_frames
from ksm_exporter.sources.process_identity import PROCESS_LABELS, read_identity
from ksm_exporter.sources.process_sweep import ProcessKsm, ProcessSweeper
from ksm_exporter.sources.roots import Roots
from ksm_exporter.sources.smaps import Unreadable, read_mergeable_ranges
from ksm_exporter.sources.sysfs import read_numbers

KSM_COUNTERS = ("pages_shared", "pages_sharing", "ksm_zero_pages", "use_zero_pages")
READ_THREADS = 2
MISSING_CAP_SYS_ADMIN = (
    "the kernel hides physical frames from this reader (pagemap shows every frame as 0 "
    "without CAP_SYS_ADMIN): run the audit as root with CAP_SYS_ADMIN"
)


@dataclass(slots=True)
class ProcessPages:
    """One registered process: who it is and the KSM frames it maps (one entry per mapping)."""

    pid: int
    labels: dict[str, str]
    uid: int | None
    merging_pages: int | None  # its ksm_stat's count: rmap_items in the stable tree
    mergeable_bytes: int = 0
    pages_present: int = 0
    ksm_frames: array[int] = field(default_factory=lambda: array("Q"))
    zero_pages: int | None = None  # its ksm_stat's ksm_zero_pages: mapped to the zero page
    error: str = ""  # why it could not be read; its frames are then not counted
    vanished: bool = False


@dataclass(frozen=True, slots=True)
class PageSharingReading:
    processes: tuple[ProcessPages, ...]
    counters_before: dict[str, int]
    counters_after: dict[str, int]
    page_size: int
    frames_hidden: bool = False  # every present frame read as 0: CAP_SYS_ADMIN missing
    kpageflags_error: str = ""
    sweep_error: str = ""
    unreadable_processes: int = 0  # registered per the sweep, yet its files not readable

    @property
    def read(self) -> tuple[ProcessPages, ...]:
        return tuple(p for p in self.processes if not p.error)

    @property
    def failed(self) -> tuple[ProcessPages, ...]:
        return tuple(p for p in self.processes if p.error)

    @property
    def complete(self) -> bool:
        return not (
            self.frames_hidden
            or self.kpageflags_error
            or self.sweep_error
            or self.failed
            or self.unreadable_processes
        )

    @property
    def missing_privilege(self) -> str:
        if self.frames_hidden:
            return MISSING_CAP_SYS_ADMIN
        return ""


def read_uid(procfs_root: str, pid: int) -> int | None:
    """The real uid from `<procfs>/<pid>/status` (proc_pid_status(): "Uid:\treal\teffective...")."""
    try:
        with open(os.path.join(procfs_root, str(pid), "status"), "rb") as status:
            for line in status:
                if line.startswith(b"Uid:"):
                    fields = line.split()
                    return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None
    except OSError:
        return None
    return None


def _read_process(
    roots: Roots, registered: ProcessKsm, labels: Collection[str], page_size: int
) -> tuple[ProcessPages, ProcessFrames | None]:
    """One process: who it is, its mergeable ranges and the frames behind them."""
    pid = registered.pid
    process = ProcessPages(
        pid,
        read_identity(roots.procfs, pid, labels).labels,
        read_uid(roots.procfs, pid),
        registered.stat.merging_pages,
        zero_pages=registered.stat.zero_pages,
    )
    ranges = read_mergeable_ranges(roots.procfs, pid)
    if isinstance(ranges, Unreadable):
        process.error, process.vanished = f"smaps: {ranges.reason}", ranges.vanished
        return process, None
    process.mergeable_bytes = sum(end - start for start, end in ranges)
    frames = read_frames(os.path.join(roots.procfs, str(pid), "pagemap"), pid, ranges, page_size)
    if frames.error:
        process.error, process.vanished = f"pagemap: {frames.error}", frames.vanished
        return process, None
    process.pages_present = len(frames.frames) + frames.hidden
    return process, frames


def read_page_sharing(
    roots: Roots,
    labels: Collection[str] = PROCESS_LABELS,
    page_size: int | None = None,
    threads: int = READ_THREADS,
) -> PageSharingReading:
    """Every registered process's KSM frames; never raises.

    Processes are read by `threads` threads: the kernel's walks of smaps and pagemap run
    without the GIL, beside the decoding of another process's frames.
    """
    page_size = page_size or os.sysconf("SC_PAGE_SIZE")
    before = dict(read_numbers(roots.sysfs, KSM_COUNTERS).values)
    sweeper = ProcessSweeper(roots.procfs)
    try:
        sweep = sweeper.sweep()
    finally:
        sweeper.close()
    with ThreadPoolExecutor(max(1, threads)) as pool:
        read = list(
            pool.map(lambda p: _read_process(roots, p, labels, page_size), sweep.registered)
        )
    processes = [process for process, _frames in read]
    found = [(process, frames) for process, frames in read if frames is not None]
    hidden = sum(frames.hidden for _process, frames in found)
    frames_hidden = hidden > 0 and hidden == sum(p.pages_present for p, _f in found)
    distinct_frames: set[int] = set()
    for _process, frames in found:
        distinct_frames.update(frames.frames)
    distinct = sorted(distinct_frames)
    del distinct_frames
    flags = read_frame_flags(os.path.join(roots.procfs, "kpageflags"), distinct)
    del distinct
    if not flags.error:
        ksm = flags.ksm
        for process, frames in found:
            process.ksm_frames = array("Q", filter(ksm.__contains__, frames.frames))
    after = dict(read_numbers(roots.sysfs, KSM_COUNTERS).values)
    return PageSharingReading(
        processes=tuple(processes),
        counters_before=before,
        counters_after=after,
        page_size=page_size,
        frames_hidden=frames_hidden,
        kpageflags_error=flags.error,
        sweep_error="; ".join(f"{p.path}: {p.reason}" for p in sweep.problems),
        unreadable_processes=sweep.unreadable,
    )

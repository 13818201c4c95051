"""`<procfs>/<pid>/smaps_rollup` and `<procfs>/<pid>/smaps`: what a process's memory is made of,
for the few processes whose lack of merging is being explained (never swept on a scrape).

Both files are written by fs/proc/task_mmu.c: `show_smap()` writes one block per memory area
(a header line, `Name:  N kB` lines, and `VmFlags:` last, `show_smap_vma_flags()`, where
VM_MERGEABLE is `mg`); `show_smaps_rollup()` writes the same size lines summed over every
area. Opening either needs ptrace read access to the process (`proc_maps_open()` ->
`proc_mem_open()` with PTRACE_MODE_READ): another user's process needs CAP_SYS_PTRACE, which
CAP_DAC_READ_SEARCH does not give; the reason is then said, never a size of 0.

The audit reads the mergeable areas' address ranges (`mergeable_ranges`) to read their pages'
frames from pagemap: KSM merges only pages of VM_MERGEABLE areas (mm/ksm.c
scan_get_next_rmap_item() skips the others) and MADV_UNMERGEABLE unmerges an area's pages
before it clears the flag (unmerge_ksm_pages()), so every KSM frame a process maps lies in one.
/proc/<pid>/maps has no flags and the PROCMAP_QUERY ioctl (6.11) only r/w/x/shared: smaps is
the one listing of VM_MERGEABLE. Its page-table walk costs about what reading the same range's
pagemap costs (5.4 against 4.3 ms for 512 MiB on this machine).

On kernels without ksm_stat's `ksm_mergeable:` line (added by "ksm: add ksm involvement
information for each process", in 6.14) the `mg` flags are the only sign that a process
registered memory that ksmd has not visited yet.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

from ksm_exporter.sources.kernel_file import KIB, PID_VANISHED, os_error_reason

_CHUNK = 1 << 16
MERGEABLE_FLAG = b"mg"  # show_smap_vma_flags(): [ilog2(VM_MERGEABLE)] = "mg"


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A file that could not be read, and why, in words an operator can act on."""

    path: str
    reason: str
    vanished: bool = False  # the process exited while it was read


@dataclass(frozen=True, slots=True)
class MemorySizes:
    """Sizes in bytes, summed over the areas read; None where the kernel wrote no such line
    (`KSM:` appeared in 6.x, smaps_rollup itself in 4.14)."""

    rss_bytes: int | None
    anonymous_bytes: int | None
    anon_huge_bytes: int | None
    ksm_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class MergeableAreas:
    """The areas of `smaps` whose VmFlags hold `mg`, and what they hold."""

    areas: int
    size_bytes: int  # virtual size
    sizes: MemorySizes


def _size_lines(block: bytes) -> dict[bytes, int]:
    """`Name:   N kB` lines -> bytes; any other line is skipped."""
    sizes: dict[bytes, int] = {}
    for line in block.split(b"\n"):
        name, sep, rest = line.partition(b":")
        parts = rest.split()
        if sep and len(parts) == 2 and parts[1] == b"kB" and parts[0].isdigit():
            sizes[name] = int(parts[0]) * KIB
    return sizes


def _memory_sizes(sizes: dict[bytes, int]) -> MemorySizes:
    return MemorySizes(
        sizes.get(b"Rss"), sizes.get(b"Anonymous"), sizes.get(b"AnonHugePages"), sizes.get(b"KSM")
    )


def _read_all(path: str) -> bytes | Unreadable:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError as err:
        if os.path.isdir(os.path.dirname(path)):  # the process is there, the file is not
            return Unreadable(path, "absent: this kernel does not write it")
        return _unreadable(path, err)
    except OSError as err:
        return _unreadable(path, err)
    chunks = []
    try:
        while chunk := os.read(fd, _CHUNK):
            chunks.append(chunk)
    except OSError as err:
        return _unreadable(path, err)
    finally:
        os.close(fd)
    return b"".join(chunks)


def _unreadable(path: str, err: OSError) -> Unreadable:
    if err.errno in PID_VANISHED:
        return Unreadable(path, "the process exited", vanished=True)
    if err.errno in (errno.EACCES, errno.EPERM):
        return Unreadable(
            path, "needs ptrace read access to the process (its user, or CAP_SYS_PTRACE)"
        )
    return Unreadable(path, os_error_reason(err))


def parse_smaps_rollup(raw: bytes) -> MemorySizes:
    return _memory_sizes(_size_lines(raw))


def read_smaps_rollup(procfs_root: str, pid: int) -> MemorySizes | Unreadable:
    """The process's memory summed over its areas (show_smaps_rollup()); never raises. Empty
    content (a kernel thread, a zombie: no mm) is unreadable with that reason."""
    path = os.path.join(procfs_root, str(pid), "smaps_rollup")
    raw = _read_all(path)
    if isinstance(raw, Unreadable):
        return raw
    if not raw:
        return Unreadable(path, "empty: the process has no memory (a kernel thread or a zombie)")
    return parse_smaps_rollup(raw)


def _areas(raw: bytes) -> list[tuple[bytes, bytes]]:
    """(size lines, flags) of each area: a block ends at its `VmFlags:` line."""
    areas = []
    block: list[bytes] = []
    for line in raw.split(b"\n"):
        if line.startswith(b"VmFlags:"):
            areas.append((b"\n".join(block), line[len(b"VmFlags:") :]))
            block = []
        else:
            block.append(line)
    return areas


def parse_mergeable_areas(raw: bytes) -> MergeableAreas:
    count = size = 0
    totals: dict[bytes, int] = {}
    for block, flags in _areas(raw):
        if MERGEABLE_FLAG not in flags.split():
            continue
        sizes = _size_lines(block)
        count += 1
        size += sizes.get(b"Size", 0)
        for name, value in sizes.items():
            totals[name] = totals.get(name, 0) + value
    return MergeableAreas(count, size, _memory_sizes(totals) if count else MemorySizes(0, 0, 0))


def read_mergeable_areas(procfs_root: str, pid: int) -> MergeableAreas | Unreadable:
    """The process's VM_MERGEABLE areas; never raises. Reading smaps walks every page table of
    the process: it is read only for a process being explained."""
    path = os.path.join(procfs_root, str(pid), "smaps")
    raw = _read_all(path)
    if isinstance(raw, Unreadable):
        return raw
    if not raw:
        return Unreadable(path, "empty: the process has no memory (a kernel thread or a zombie)")
    if b"VmFlags:" not in raw:
        return Unreadable(path, "no VmFlags lines (a kernel before 3.8)")
    return parse_mergeable_areas(raw)


def _header_range(block: bytes) -> tuple[int, int] | None:
    """The [start, end) of an area's header line, `start-end perms offset dev inode path`."""
    start, dash, rest = block.lstrip(b"\n").partition(b"-")
    end = rest.split(b" ", 1)[0]
    try:
        return (int(start, 16), int(end, 16)) if dash else None
    except ValueError:
        return None


def parse_mergeable_ranges(raw: bytes) -> tuple[tuple[int, int], ...]:
    """The [start, end) ranges of the areas whose VmFlags hold `mg`, adjacent ones joined."""
    ranges: list[tuple[int, int]] = []
    for block, flags in _areas(raw):
        if MERGEABLE_FLAG not in flags.split() or (area := _header_range(block)) is None:
            continue
        if ranges and ranges[-1][1] == area[0]:
            ranges[-1] = (ranges[-1][0], area[1])
        else:
            ranges.append(area)
    return tuple(ranges)


def read_mergeable_ranges(procfs_root: str, pid: int) -> tuple[tuple[int, int], ...] | Unreadable:
    """The process's VM_MERGEABLE address ranges; never raises. Empty content (no mm) is no
    range."""
    raw = _read_all(os.path.join(procfs_root, str(pid), "smaps"))
    return raw if isinstance(raw, Unreadable) else parse_mergeable_ranges(raw)

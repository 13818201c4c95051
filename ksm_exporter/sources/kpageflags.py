"""`<procfs>/kpageflags`: the flags of given physical frames, and never of all of RAM.

One 64-bit entry per frame, the entry of frame P at offset P * 8 (fs/proc/page.c
kpageflags_read(), each entry from stable_page_flags()); the bits are the stable ones of
include/uapi/linux/kernel-page-flags.h, among them KPF_KSM (21), set for a frame KSM merged
(folio_test_ksm()). The zero page that `use_zero_pages` maps empty pages to carries
KPF_ZERO_PAGE (24), not KPF_KSM: it is no KSM frame (a process's ksm_stat counts those pages
in ksm_zero_pages). Frames with no struct page read as KPF_NOPAGE.

A read of one entry costs about as much as a read of ten (measured on this machine: 0.5 us
for 8 bytes, 0.05 us per entry in a 4 KiB read), so frames closer than `_GAP` entries to one
another are read together.
"""

from __future__ import annotations

import os
import sys
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import compress, count, islice
from operator import sub

from ksm_exporter.sources.kernel_file import os_error_reason

ENTRY_BYTES = 8
KPF_NOPAGE = 20
KPF_KSM = 21
KPF_ZERO_PAGE = 24
# Entries are native 64-bit words: bit 21 is bit 5 of byte 2 (byte 5 on big-endian hosts).
_KSM_BYTE = KPF_KSM // 8 if sys.byteorder == "little" else ENTRY_BYTES - 1 - KPF_KSM // 8
_KSM_SET = bytes((byte >> KPF_KSM % 8) & 1 for byte in range(256))
_GAP = 10  # entries between two frames below which one read of both is cheaper
_RUN_LIMIT = 1 << 16  # entries per read at most: 512 KiB


@dataclass(slots=True)
class FrameFlags:
    """Which of the frames asked about are KSM frames.

    `error` is set when the file could not be read: missing (a kernel without
    CONFIG_PROC_PAGE_MONITOR, a container without it) or not permitted (it is mode 0400,
    root's). `unread` counts frames beyond the file's end.
    """

    ksm: set[int] = field(default_factory=set)
    unread: int = 0
    error: str = ""


def runs(frames: Sequence[int], gap: int = _GAP, limit: int = _RUN_LIMIT) -> list[tuple[int, int]]:
    """[first, last] frame runs covering sorted `frames`, each read at once."""
    if not frames:
        return []
    # Where the gap to the previous frame is wider than `gap`, a new run starts; found by
    # map()/compress() in C, as the frames may be millions.
    gaps = map(sub, islice(frames, 1, None), frames)
    starts = [0, *(index + 1 for index in compress(count(), map(gap.__lt__, gaps)))]
    found: list[tuple[int, int]] = []
    for start, end in zip(starts, [*starts[1:], len(frames)], strict=True):
        begin, first, last = start, frames[start], frames[end - 1]
        while last - first >= limit:  # a long dense run, read in pieces
            piece_end = bisect_right(frames, first + limit - 1, begin, end)
            found.append((first, frames[piece_end - 1]))
            begin, first = piece_end, frames[piece_end]
        found.append((first, last))
    return found


def read_frame_flags(kpageflags_path: str, frames: Sequence[int]) -> FrameFlags:
    """The KSM frames among sorted, distinct `frames`. Never raises.

    The set may also hold frames between two asked for, read with them: a caller only ever
    asks whether one of its frames is in it.
    """
    result = FrameFlags()
    if not frames:
        return result
    try:
        fd = os.open(kpageflags_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        result.error = os_error_reason(err)
        return result
    try:
        for first, last in runs(frames):
            count = last - first + 1
            try:
                raw = os.pread(fd, count * ENTRY_BYTES, first * ENTRY_BYTES)
            except OSError as err:
                result.error = os_error_reason(err)
                return result
            read = len(raw) // ENTRY_BYTES
            if read < count:  # past the file's end: frames without a struct page
                end = first + read
                result.unread += bisect_right(frames, last) - bisect_left(frames, end)
            # The byte of bits 16-23 of each entry, 1 where KPF_KSM is set: no entry is
            # turned into a Python int.
            ksm = raw[_KSM_BYTE : read * ENTRY_BYTES : ENTRY_BYTES].translate(_KSM_SET)
            result.ksm.update(compress(range(first, first + read), ksm))
    finally:
        os.close(fd)
    return result

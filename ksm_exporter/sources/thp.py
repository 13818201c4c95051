"""`<sysfs>/kernel/mm/transparent_hugepage/`: whether anonymous memory may come in huge pages.

`enabled` lists `always madvise never` with the active one in brackets
(mm/huge_memory.c: enabled_show()); `khugepaged/pages_collapsed` counts the huge pages
khugepaged built from small ones since boot. KSM merges small pages only: a huge page is split
first (try_to_merge_one_page() in mm/ksm.c splits a large folio before it merges a page of it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ksm_exporter.sources.kernel_file import (
    BadValue,
    os_error_reason,
    parse_unsigned,
    read_bytes,
)
from ksm_exporter.sources.smaps import Unreadable


@dataclass(frozen=True, slots=True)
class HugePages:
    """THP's mode (`always`, `madvise`, `never`), and khugepaged's collapses where readable."""

    enabled: str
    pages_collapsed: int | None


def active_mode(raw: bytes) -> str | None:
    """The bracketed word of `always [madvise] never`, or None where there is not exactly one."""
    active = [word[1:-1] for word in raw.split() if word.startswith(b"[") and word.endswith(b"]")]
    return active[0].decode("ascii", "replace") if len(active) == 1 else None


def thp_dir(sysfs_root: str) -> str:
    return os.path.join(sysfs_root, "kernel", "mm", "transparent_hugepage")


def read_huge_pages(sysfs_root: str) -> HugePages | Unreadable:
    """Never raises; a kernel without THP has no such directory."""
    directory = thp_dir(sysfs_root)
    path = os.path.join(directory, "enabled")
    try:
        raw = read_bytes(path)
    except OSError as err:
        return Unreadable(path, os_error_reason(err))
    if raw is None:
        return Unreadable(path, "absent: the kernel has no transparent huge pages")
    mode = active_mode(raw)
    if mode is None:
        return Unreadable(path, f"no single bracketed mode in {raw[:64]!r}")
    collapsed: int | None
    try:
        counter = read_bytes(os.path.join(directory, "khugepaged", "pages_collapsed"))
        collapsed = parse_unsigned(counter) if counter is not None else None
    except (OSError, BadValue):
        collapsed = None
    return HugePages(mode, collapsed)

"""What merging saves, from the sysfs snapshot and the size of memory.

A figure is None when a file it needs is absent, or present but unreadable: a figure is
never computed as if an unreadable file held 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ksm_exporter.sources.sysfs import KsmSysfs


@dataclass(frozen=True, slots=True)
class Savings:
    saved_bytes: int | None
    saved_ratio: float | None
    mappings_per_shared_page: float | None
    unshared_pages_per_sharing_page: float | None
    memory_profit_bytes: int | None = None


def saved_pages(ksm: KsmSysfs) -> int | None:
    """pages_sharing + ksm_zero_pages, per the kernel's KSM documentation.

    Kernels before ksm_zero_pages existed merge empty pages into the zero page too (with
    use_zero_pages) but do not count them: there the figure is a lower bound.
    """
    if ksm.pages_sharing is None or not ksm.usable("ksm_zero_pages"):
        return None
    return ksm.pages_sharing + (ksm.ksm_zero_pages or 0)


RMAP_ITEM_BYTES = 64  # sizeof(struct ksm_rmap_item) on 64-bit kernels
RMAP_ITEM_FILES = ("pages_shared", "pages_sharing", "pages_unshared", "pages_volatile")


def rmap_items(ksm: KsmSysfs) -> int | None:
    """The kernel's rmap items from sysfs: pages_volatile_show() is ksm_rmap_items minus
    shared, sharing and unshared (clamped at 0), so the four files add up to ksm_rmap_items."""
    values = [ksm.values.get(name) for name in RMAP_ITEM_FILES]
    if not ksm.usable(*RMAP_ITEM_FILES) or None in values:
        return None
    return sum(v or 0 for v in values)


def memory_profit_bytes(ksm: KsmSysfs, page_size: int | None) -> int | None:
    """Net bytes KSM gains, signed: the kernel's general_profit where it has the file, else
    the identity general_profit_show() computes, (pages_sharing + ksm_zero_pages) * page
    size - ksm_rmap_items * sizeof(rmap_item), from the sysfs counters (ksm_zero_pages only
    where the file exists: older kernels do not count zero-page merges)."""
    if ksm.general_profit is not None:
        return ksm.general_profit
    if not ksm.usable("general_profit") or page_size is None:
        return None
    pages, items = saved_pages(ksm), rmap_items(ksm)
    if pages is None or items is None:
        return None
    return pages * page_size - items * RMAP_ITEM_BYTES


def mappings_per_shared_page(ksm: KsmSysfs) -> float | None:
    """1 + pages_sharing / pages_shared: the first mapping of each KSM page is in pages_shared."""
    if ksm.pages_sharing is None or not ksm.pages_shared:
        return None
    return 1 + ksm.pages_sharing / ksm.pages_shared


def unshared_pages_per_sharing_page(ksm: KsmSysfs) -> float | None:
    """pages_unshared / pages_sharing, "wasted effort": +Inf when pages are scanned in vain
    and none shares; None when both are 0 (nothing to judge)."""
    unshared, sharing = ksm.pages_unshared, ksm.pages_sharing
    if unshared is None or sharing is None or (unshared == 0 and sharing == 0):
        return None
    return math.inf if sharing == 0 else unshared / sharing


def derive_savings(ksm: KsmSysfs, page_size: int, mem_total_bytes: int | None) -> Savings:
    pages = saved_pages(ksm)
    saved_bytes = None if pages is None else pages * page_size
    saved_ratio = (
        None if saved_bytes is None or not mem_total_bytes else saved_bytes / mem_total_bytes
    )
    return Savings(
        saved_bytes,
        saved_ratio,
        mappings_per_shared_page(ksm),
        unshared_pages_per_sharing_page(ksm),
        memory_profit_bytes(ksm, page_size),
    )

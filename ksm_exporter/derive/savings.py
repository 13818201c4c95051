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


def saved_pages(ksm: KsmSysfs) -> int | None:
    """pages_sharing + ksm_zero_pages, per the kernel's KSM documentation.

    Kernels before ksm_zero_pages existed merge empty pages into the zero page too (with
    use_zero_pages) but do not count them: there the figure is a lower bound.
    """
    if ksm.pages_sharing is None or not ksm.usable("ksm_zero_pages"):
        return None
    return ksm.pages_sharing + (ksm.ksm_zero_pages or 0)


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
    )

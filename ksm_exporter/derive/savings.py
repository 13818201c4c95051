"""What merging saves, from the sysfs snapshot and the size of memory."""

from __future__ import annotations

from dataclasses import dataclass

from ksm_exporter.sources.sysfs import KsmSysfs


@dataclass(frozen=True, slots=True)
class Savings:
    """Each figure is None when a file it needs is absent."""

    saved_bytes: int | None
    saved_ratio: float | None
    sharing_ratio: float | None
    unshared_ratio: float | None


def ratio_or_zero(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator > 0 else 0.0


def saved_pages(ksm: KsmSysfs) -> int | None:
    """pages_sharing + ksm_zero_pages, per the kernel's KSM documentation.

    Kernels before 6.5 have no ksm_zero_pages file: they never merge into the zero page
    by count, so its absence adds nothing.
    """
    if ksm.pages_sharing is None:
        return None
    return ksm.pages_sharing + (ksm.ksm_zero_pages or 0)


def derive_savings(ksm: KsmSysfs, page_size: int, mem_total_bytes: int | None) -> Savings:
    pages = saved_pages(ksm)
    saved_bytes = None if pages is None else pages * page_size
    saved_ratio = (
        None
        if saved_bytes is None or mem_total_bytes is None
        else ratio_or_zero(saved_bytes, mem_total_bytes)
    )
    sharing_ratio = (
        None
        if ksm.pages_sharing is None or ksm.pages_shared is None
        else ratio_or_zero(ksm.pages_sharing, ksm.pages_shared)
    )
    unshared_ratio = (
        None
        if ksm.pages_unshared is None or ksm.pages_sharing is None
        else ratio_or_zero(ksm.pages_unshared, ksm.pages_sharing)
    )
    return Savings(saved_bytes, saved_ratio, sharing_ratio, unshared_ratio)

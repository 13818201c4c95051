"""The audit as a person reads it at a glance (largest pairs first), and as JSON for scripts."""

from __future__ import annotations

import json
from typing import Any

from ksm_exporter.audit.model import Audit

_UNITS = (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10))


def size(pages: int, page_size: int) -> str:
    value = pages * page_size
    for unit, factor in _UNITS:
        if value >= factor:
            return f"{value / factor:,.1f} {unit}"
    return f"{value} B"


def _counter_change(before: int | None, after: int | None) -> str:
    if before is None or after is None:
        return "unreadable"
    return f"{before}" if before == after else f"{before} -> {after}"


def _partial_lines(audit: Audit) -> list[str]:
    reading = audit.reading
    lines = [
        f"  pid {p.pid} ({p.labels.get('comm', '')}): {p.error}"
        + (" (exited)" if p.vanished else "")
        for p in reading.failed
    ]
    if reading.unreadable_processes:
        lines.append(f"  {reading.unreadable_processes} processes whose ksm_stat is unreadable")
    if reading.sweep_error:
        lines.append(f"  {reading.sweep_error}")
    return lines


def render_text(audit: Audit, top: int = 20) -> str:
    sharing, page_size, rec = audit.sharing, audit.page_size, audit.reconciliation
    read, failed = audit.reading.read, audit.reading.failed
    out = [
        f"KSM sharing by {audit.key.describe()}: {len(sharing.tenants)} tenants,"
        f" {len(read)} processes read in {audit.seconds:.2f} s"
        + ("" if audit.reading.complete else " (PARTIAL: see below)"),
        f"KSM frames {sharing.frames} (pages_shared"
        f" {_counter_change(rec.kernel_frames_before, rec.kernel_frames_after)}),"
        f" mappings {sharing.mappings} (pages_shared + pages_sharing"
        f" {_counter_change(rec.kernel_mappings_before, rec.kernel_mappings_after)}),"
        f" saved {sharing.saved_pages} pages ({size(sharing.saved_pages, page_size)})",
        f"Saved by merging across tenants: {sharing.cross_tenant_saved_pages} pages"
        f" ({size(sharing.cross_tenant_saved_pages, page_size)})"
        f" on {sharing.cross_tenant_frames} frames",
        "",
    ]
    if sharing.pairs:
        out.append("Tenants sharing pages, largest first (frames both map):")
        width = max(len(p.first) for p in sharing.pairs[:top])
        for pair in sharing.pairs[:top]:
            out.append(
                f"  {pair.frames:>8} {size(pair.frames, page_size):>10}  {pair.first:<{width}}"
                f"  <->  {pair.second}"
            )
        if len(sharing.pairs) > top:
            rest = sharing.pairs[top:]
            out.append(
                f"  {sum(p.frames for p in rest):>8} frames more over {len(rest)} pairs"
                " (--top to list them)"
            )
    else:
        out.append("No KSM frame is mapped by two tenants.")
    out.append("")
    out.append(
        f"  {'KSM PAGES':>9} {'WITHIN':>8} {'ACROSS':>8} {'ISOLATING':>9} {'KSM OFF':>8}  TENANT"
    )
    for tenant in sharing.tenants:
        own = "" if tenant.keyed else f"  (no {audit.key.kind})"
        out.append(
            f"  {tenant.ksm_pages:>9} {tenant.within_pages:>8} {tenant.cross_pages:>8}"
            f" {tenant.isolation_cost:>9} {tenant.ksm_off_cost:>8}  {tenant.name}{own}"
        )
    out.append(
        "  pages: WITHIN maps frames only its own processes map, ACROSS frames another tenant"
        " maps too; ISOLATING is the saving lost if it merged only with itself, KSM OFF if it"
        " left KSM (mem-merge=off, MemoryKSM=no)"
    )
    if rec.agrees is False or rec.reasons:
        out.append("")
        out.append(
            "Beside the kernel's counters: "
            + ("within what moved while reading" if rec.agrees else "they differ")
            + f"; sum of ksm_merging_pages of the processes read {rec.merging_pages_read}"
        )
        out.extend(f"  {reason}" for reason in rec.reasons)
    if failed or not audit.reading.complete:
        out.append("")
        out.append("Not counted:")
        out.extend(_partial_lines(audit))
    return "\n".join(out) + "\n"


def as_dict(audit: Audit) -> dict[str, Any]:
    sharing, rec, reading = audit.sharing, audit.reconciliation, audit.reading
    return {
        "tenant_by": audit.key.describe(),
        "page_size_bytes": audit.page_size,
        "complete": reading.complete,
        "seconds": round(audit.seconds, 3),
        "totals": {
            "frames": sharing.frames,
            "mappings": sharing.mappings,
            "saved_pages": sharing.saved_pages,
            "cross_tenant_frames": sharing.cross_tenant_frames,
            "cross_tenant_saved_pages": sharing.cross_tenant_saved_pages,
        },
        "pairs": [
            {
                "tenants": [pair.first, pair.second],
                "frames": pair.frames,
            }
            for pair in sharing.pairs
        ],
        "tenants": [
            {
                "name": t.name,
                "keyed": t.keyed,
                "pids": list(t.pids),
                "ksm_pages": t.ksm_pages,
                "within_pages": t.within_pages,
                "cross_pages": t.cross_pages,
                "frames": t.frames,
                "cross_frames": t.cross_frames,
                "isolation_cost_pages": t.isolation_cost,
                "ksm_off_cost_pages": t.ksm_off_cost,
                "ksm_merging_pages": t.merging_pages,
            }
            for t in sharing.tenants
        ],
        "kernel": {
            "before": reading.counters_before,
            "after": reading.counters_after,
            "agrees": rec.agrees,
            "merging_pages_read": rec.merging_pages_read,
            "unread_merging_pages": rec.unread_merging_pages,
            "reasons": list(rec.reasons),
        },
        "not_read": [
            {"pid": p.pid, "comm": p.labels.get("comm", ""), "error": p.error, "exited": p.vanished}
            for p in reading.failed
        ],
        "unreadable_processes": reading.unreadable_processes,
    }


def render_json(audit: Audit) -> str:
    return json.dumps(as_dict(audit), indent=2) + "\n"

"""The status views' section on sharing between tenants: the largest cross-tenant pairs and
what isolating each tenant would cost, from the last sharing audit (`status --sharing`, or
the server's `--collector.sharing`); where none has run, how to have one."""

from __future__ import annotations

import time

from ksm_exporter.derive.sharing import SharingSeen
from ksm_exporter.status.formats import size
from ksm_exporter.status.model import Row, Section, View
from ksm_exporter.status.snapshot import Snapshot

SHOWN = 5  # pairs and tenants listed; `ksm-exporter audit` lists them all
NOT_AUDITED = {
    View.COMMAND: "not audited: `status --sharing` or `ksm-exporter audit` as root shows it",
    View.SERVER: "not audited: the exporter's --collector.sharing (root, CAP_SYS_ADMIN) "
    "shows it here",
}


def _when(seen: SharingSeen) -> str:
    age = time.time() - seen.finished_at
    return f"by {seen.tenant_by}, {age:.0f} s ago" + ("" if seen.complete else ", partial")


def sharing_section(snapshot: Snapshot, view: View) -> Section:
    seen, page = snapshot.sharing, snapshot.page_size
    heading = "Sharing between tenants"
    if seen is None:
        return Section("sharing", heading, (Row("Tenants", NOT_AUDITED[view]),), {"sharing": None})
    if seen.sharing is None:
        return Section(
            "sharing",
            heading,
            (Row("Tenants", f"not seen: {seen.reason}"),),
            {"sharing": {"tenant_by": seen.tenant_by, "error": seen.reason}},
        )
    sharing = seen.sharing
    rows = [
        Row(
            "Tenants",
            f"{size(sharing.cross_tenant_saved_pages * page)} saved by merging across tenants,"
            f" {len(sharing.pairs)} pairs ({_when(seen)})",
        )
    ]
    rows += [
        Row("Pair", f"{pair.first} and {pair.second}: {size(pair.frames * page)} shared")
        for pair in sharing.pairs[:SHOWN]
    ]
    costly = [t for t in sharing.tenants if t.cross_frames][:SHOWN]
    rows += [
        Row(
            "Isolating",
            f"{tenant.name}: {size(tenant.isolation_cost * page)} if it merged only with "
            f"itself, {size(tenant.ksm_off_cost * page)} if it left KSM",
        )
        for tenant in costly
    ]
    figures = {
        "sharing": {
            "tenant_by": seen.tenant_by,
            "complete": seen.complete,
            "finished_at": seen.finished_at,
            "cross_tenant_saved_bytes": sharing.cross_tenant_saved_pages * page,
            "pairs": [
                {"tenants": [p.first, p.second], "shared_bytes": p.frames * page}
                for p in sharing.pairs[:SHOWN]
            ],
            "tenants": [
                {
                    "name": t.name,
                    "isolation_cost_bytes": t.isolation_cost * page,
                    "leave_ksm_cost_bytes": t.ksm_off_cost * page,
                }
                for t in costly
            ],
        }
    }
    return Section("sharing", heading, tuple(rows), figures)

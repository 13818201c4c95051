"""One audit: the page sharing read from the host, grouped into tenants and counted.

The reading is sources/page_sharing.py, the counting derive/sharing.py; this module only puts
them together, for the `audit` command and for the server's sharing collector alike.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ksm_exporter.derive.sharing import (
    Reconciliation,
    Sharing,
    SharingSeen,
    reconcile,
    share,
)
from ksm_exporter.derive.tenants import TenantKey, group_by_tenant
from ksm_exporter.sources.page_sharing import (
    READ_THREADS,
    PageSharingReading,
    read_page_sharing,
)
from ksm_exporter.sources.roots import Roots


@dataclass(frozen=True, slots=True)
class Audit:
    key: TenantKey
    reading: PageSharingReading
    sharing: Sharing
    reconciliation: Reconciliation
    seconds: float  # how long the reading took

    @property
    def page_size(self) -> int:
        return self.reading.page_size


def take_audit(roots: Roots, key: TenantKey, threads: int = READ_THREADS) -> Audit:
    started = time.monotonic()
    reading = read_page_sharing(roots, threads=threads)
    seconds = time.monotonic() - started
    sharing = share(group_by_tenant(key, reading.processes))
    reconciliation = reconcile(
        sharing,
        reading.counters_before,
        reading.counters_after,
        (p.merging_pages for p in reading.read),
        (p.merging_pages for p in reading.failed),
    )
    return Audit(key, reading, sharing, reconciliation, seconds)


def cannot_see(audit: Audit) -> str:
    """Why the audit saw no frames at all, in one line; "" when it saw them."""
    reading = audit.reading
    if reading.missing_privilege:
        return reading.missing_privilege
    if reading.kpageflags_error:
        return f"/proc/kpageflags: {reading.kpageflags_error}"
    return ""


def seen_of(audit: Audit, finished_at: float) -> SharingSeen:
    """The audit as the status views show it."""
    reason = cannot_see(audit)
    return SharingSeen(
        tenant_by=audit.key.describe(),
        sharing=None if reason else audit.sharing,
        reason=reason,
        complete=audit.reading.complete,
        finished_at=finished_at,
    )

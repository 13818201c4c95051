"""Who shares KSM pages with whom (derive/sharing.py), as metric families of bounded size.

A tenant's series carry the label of the key that makes it (`vm`, `namespace`, `uid`,
`unit` or `cgroup`), so the selectors written for the per-process series pick tenants too;
a process without the key is a tenant of its own, with `pid` and `comm` instead. At most
`tenants` tenants (those sharing most pages with others) and `pairs` pairs (those sharing
most frames) get series of their own; the rest are summed, so the series add up to the whole.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from ksm_exporter.derive.sharing import Sharing, TenantSharing, top_pairs
from ksm_exporter.derive.tenants import TenantKey


def tenant_labels(tenant: TenantSharing) -> list[str]:
    """[key label, pid, comm]: the key's value, or the process of a tenant of its own."""
    if tenant.keyed:
        return [tenant.name, "", ""]
    return ["", str(tenant.pids[0]) if tenant.pids else "", tenant.comm]


def sharing_families(
    sharing: Sharing, key: TenantKey, tenants: int, pairs: int
) -> Iterator[Metric]:
    names = [key.kind, "pid", "comm"]
    own = sharing.tenants[:tenants]
    rest = sharing.tenants[tenants:]
    pages = GaugeMetricFamily(
        "ksm_sharing_tenant_pages",
        "A tenant's pages mapped to KSM frames, by whether another tenant maps the frame too "
        "(frames=shared) or not (frames=own).",
        labels=[*names, "frames"],
    )
    shared_frames = GaugeMetricFamily(
        "ksm_sharing_tenant_shared_frames",
        "KSM frames a tenant maps that another tenant maps too: the pages the host would stop "
        "saving if the tenant merged only with itself.",
        labels=names,
    )
    leave_cost = GaugeMetricFamily(
        "ksm_sharing_tenant_leave_ksm_pages",
        "Pages the host would stop saving if the tenant left KSM (QEMU mem-merge=off, "
        "MemoryKSM=no, allow-ksm: 0).",
        labels=names,
    )
    for tenant in own:
        values = tenant_labels(tenant)
        pages.add_metric([*values, "own"], tenant.within_pages)
        pages.add_metric([*values, "shared"], tenant.cross_pages)
        shared_frames.add_metric(values, tenant.cross_frames)
        leave_cost.add_metric(values, tenant.ksm_off_cost)
    yield from (pages, shared_frames, leave_cost)
    yield GaugeMetricFamily(
        "ksm_sharing_tenants", "Tenants mapping KSM frames.", value=len(sharing.tenants)
    )
    other = GaugeMetricFamily(
        "ksm_sharing_other_tenants_pages",
        "The pages of the tenants without series of their own mapped to KSM frames, by "
        "whether another tenant maps the frame too.",
        labels=["frames"],
    )
    other.add_metric(["own"], sum(t.within_pages for t in rest))
    other.add_metric(["shared"], sum(t.cross_pages for t in rest))
    yield other
    by_name = {t.name: t for t in sharing.tenants}
    chosen = top_pairs(sharing.pairs, pairs)
    pair = GaugeMetricFamily(
        "ksm_sharing_pair_frames",
        "KSM frames both tenants of a pair map: the pages they share.",
        labels=[*names, *(f"peer_{name}" for name in names)],
    )
    for shared in chosen.top:
        pair.add_metric(
            [
                *tenant_labels(by_name[shared.first]),
                *tenant_labels(by_name[shared.second]),
            ],
            shared.frames,
        )
    yield pair
    yield GaugeMetricFamily(
        "ksm_sharing_pairs", "Pairs of tenants that share KSM frames.", value=len(sharing.pairs)
    )
    yield GaugeMetricFamily(
        "ksm_sharing_other_pairs_frames",
        "The sum of the frames of the pairs without series of their own.",
        value=chosen.other_frames,
    )
    yield GaugeMetricFamily(
        "ksm_sharing_frames",
        "KSM frames mapped by the processes the sharing audit read (beside pages_shared).",
        value=sharing.frames,
    )
    yield GaugeMetricFamily(
        "ksm_sharing_mapped_pages",
        "Pages mapped to KSM frames by the processes the sharing audit read (beside "
        "pages_shared + pages_sharing).",
        value=sharing.mappings,
    )
    yield GaugeMetricFamily(
        "ksm_sharing_cross_tenant_saved_pages",
        "Pages saved by merging across tenants: on a frame n tenants map, n - 1.",
        value=sharing.cross_tenant_saved_pages,
    )

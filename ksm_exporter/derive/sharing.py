"""Who shares KSM pages with whom, counted as mm/ksm.c counts them.

KSM keeps one stable node per merged frame and one rmap_item per page mapped to it;
stable_tree_append() counts the node's first rmap_item in ksm_pages_shared and each further
one in ksm_pages_sharing, and adds each to its process's ksm_merging_pages. So a frame mapped
k times saves k - 1 pages, pages_shared counts the frames, pages_sharing the saved pages, and
pages_shared + pages_sharing the mappings; break_cow() / unmerge_ksm_pages() undo one mapping.

Here each KSM frame found in processes' pagemaps is one stable node, and each of its mappings
one rmap_item. Per tenant (a group of processes, derive/tenants.py):

    ksm_pages      the tenant's pages mapped to KSM frames (its share of pages_shared +
                   pages_sharing)
    within_pages   of those, pages whose frame no other tenant maps
    cross_pages    of those, pages whose frame at least one other tenant maps
    cross_frames   the frames it maps that another tenant maps too
    ksm_off_cost   the pages the host would stop saving if this tenant left KSM (QEMU
                   mem-merge=off, MemoryKSM=no...): on a frame only it maps, its m mappings
                   save m - 1; on a frame others map too, each of its m mappings saves one
                   page (the others keep their frame)
    isolation_cost the pages the host would stop saving if the tenant merged only with itself:
                   one per cross-tenant frame, as its pages would need a frame of their own

Per pair of tenants: the frames both map, the pages they share. Totals: frames
(pages_shared), mappings (pages_shared + pages_sharing), saved pages (pages_sharing), and the
saving owed to merging across tenants: on a frame mapped by n tenants, n - 1 pages.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations, repeat


@dataclass(frozen=True, slots=True)
class TenantFrames:
    """A tenant's processes and the KSM frames they map: one entry per mapping, in one
    sequence per process (a frame appears as often as the tenant maps it)."""

    name: str
    mappings: tuple[Sequence[int], ...]
    pids: tuple[int, ...] = ()
    keyed: bool = True  # False: a process without the key, a tenant of its own
    merging_pages: int | None = None  # the sum of its processes' ksm_merging_pages
    comm: str = ""  # the command of a process that is a tenant of its own


@dataclass(frozen=True, slots=True)
class TenantSharing:
    name: str
    keyed: bool
    pids: tuple[int, ...]
    ksm_pages: int
    within_pages: int
    cross_pages: int
    frames: int
    cross_frames: int
    ksm_off_cost: int
    isolation_cost: int
    merging_pages: int | None
    comm: str = ""


@dataclass(frozen=True, slots=True)
class PairSharing:
    first: str
    second: str
    frames: int  # KSM frames both map: the pages they share


@dataclass(frozen=True, slots=True)
class Sharing:
    tenants: tuple[TenantSharing, ...]  # most cross-tenant pages first
    pairs: tuple[PairSharing, ...]  # most shared frames first
    frames: int = 0
    mappings: int = 0
    cross_tenant_frames: int = 0
    cross_tenant_saved_pages: int = 0

    @property
    def saved_pages(self) -> int:
        return self.mappings - self.frames


def share(tenants: Sequence[TenantFrames]) -> Sharing:
    """The sharing of KSM frames among `tenants` (whose names are distinct).

    Set operations, C-level sums and map() carry the per-frame work: a host's KSM frames may
    be millions.
    """
    frames_of = [set().union(*tenant.mappings) for tenant in tenants]
    tenants_on: Counter[int] = Counter()
    for frames in frames_of:
        tenants_on.update(frames)
    own_frames = {pfn for pfn, count in tenants_on.items() if count == 1}
    found: list[TenantSharing] = []
    cross_of: list[set[int]] = []
    for tenant, frames in zip(tenants, frames_of, strict=True):
        within_keys = frames & own_frames
        cross_of.append(frames - within_keys)
        within = sum(sum(map(within_keys.__contains__, m)) for m in tenant.mappings)
        ksm_pages = sum(map(len, tenant.mappings))
        cross_frames = len(frames) - len(within_keys)
        found.append(
            TenantSharing(
                name=tenant.name,
                keyed=tenant.keyed,
                pids=tenant.pids,
                ksm_pages=ksm_pages,
                within_pages=within,
                cross_pages=ksm_pages - within,
                frames=len(frames),
                cross_frames=cross_frames,
                ksm_off_cost=ksm_pages - len(within_keys),
                isolation_cost=cross_frames,
                merging_pages=tenant.merging_pages,
                comm=tenant.comm,
            )
        )
    pairs = [
        _pair(tenants[i].name, tenants[j].name, count)
        for (i, j), count in pair_frames(cross_of).items()
    ]
    cross_tenant_frames = len(tenants_on) - len(own_frames)
    return Sharing(
        tenants=tuple(sorted(found, key=lambda t: (-t.cross_pages, -t.ksm_pages, t.name))),
        pairs=tuple(sorted(pairs, key=lambda p: (-p.frames, p.first, p.second))),
        frames=len(tenants_on),
        mappings=sum(t.ksm_pages for t in found),
        cross_tenant_frames=cross_tenant_frames,
        # On a frame n tenants map, n - 1 pages: the tenants' cross frames, less one per frame.
        cross_tenant_saved_pages=sum(map(len, cross_of)) - cross_tenant_frames,
    )


def _pair(one: str, other: str, frames: int) -> PairSharing:
    """The pair with its two names in order, so a pair has one name whoever lists it."""
    return PairSharing(min(one, other), max(one, other), frames)


def pair_frames(
    cross_of: Sequence[set[int]], pairwise: bool | None = None
) -> Counter[tuple[int, int]]:
    """(i, j) -> the frames tenants i and j both map, from each tenant's cross-tenant frames.

    Intersecting every two sets costs the smaller set per pair: cheap for a few tenants,
    quadratic for hundreds. Then each frame's set of tenants (a bit each) is built once
    instead, and every set of tenants counted: linear in the frames, a dict update each.
    `pairwise` forces one way (tests hold the two equal); by default the cheaper is taken.
    """
    sharing = [(index, cross) for index, cross in enumerate(cross_of) if cross]
    sizes = sorted(len(cross) for _index, cross in sharing)
    pairwise_cost = sum(size * (len(sizes) - 1 - rank) for rank, size in enumerate(sizes))
    frames: Counter[tuple[int, int]] = Counter()
    if pairwise if pairwise is not None else pairwise_cost <= 4 * sum(sizes):
        for (i, first), (j, second) in combinations(sharing, 2):
            if both := len(first & second):
                frames[i, j] = both
        return frames
    owners: dict[int, int] = {}  # a cross-tenant frame -> the bit set of the tenants mapping it
    for index, cross in sharing:
        # owners[pfn] |= bit for each frame, with the loop in C (map, zip).
        bits = map((1 << index).__or__, map(owners.get, cross, repeat(0)))
        owners.update(zip(cross, bits, strict=True))
    for members, count in Counter(owners.values()).items():
        indices = [index for index in range(members.bit_length()) if members >> index & 1]
        for pair in combinations(indices, 2):
            frames[pair] += count
    return frames


@dataclass(frozen=True, slots=True)
class TopPairs:
    """The `limit` pairs sharing the most frames, and the sum of the rest (bounded series)."""

    top: tuple[PairSharing, ...]
    other_pairs: int = 0
    other_frames: int = 0


def top_pairs(pairs: Sequence[PairSharing], limit: int) -> TopPairs:
    rest = pairs[limit:]
    return TopPairs(tuple(pairs[:limit]), len(rest), sum(p.frames for p in rest))


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """The audit's totals beside the kernel's, and why they may differ.

    The kernel's counters are read before and after the audit: merges and unmerges while it
    read move them, and `drift` is how far. Processes that could not be read hold
    `unread_merging_pages` (their ksm_merging_pages) that the audit cannot count. The zero
    page that use_zero_pages maps empty pages to is not a KSM frame (no KPF_KSM, counted in
    ksm_zero_pages, never in pages_shared or pages_sharing) and is left out of both.
    """

    audit_mappings: int
    audit_frames: int
    kernel_mappings_before: int | None
    kernel_mappings_after: int | None
    kernel_frames_before: int | None
    kernel_frames_after: int | None
    merging_pages_read: int  # the sum of ksm_merging_pages over the processes read
    unread_merging_pages: int
    drift: int | None
    reasons: tuple[str, ...] = field(default=())

    @property
    def agrees(self) -> bool | None:
        """The audit's mappings lie within what the kernel counted before and after, give or
        take the processes not read; None without the kernel's counters."""
        if self.kernel_mappings_before is None or self.kernel_mappings_after is None:
            return None
        low = min(self.kernel_mappings_before, self.kernel_mappings_after)
        high = max(self.kernel_mappings_before, self.kernel_mappings_after)
        return low - self.unread_merging_pages <= self.audit_mappings <= high


def _mappings(counters: Mapping[str, int]) -> int | None:
    if "pages_shared" in counters and "pages_sharing" in counters:
        return counters["pages_shared"] + counters["pages_sharing"]
    return None


def reconcile(
    sharing: Sharing,
    before: Mapping[str, int],
    after: Mapping[str, int],
    merging_pages_read: Iterable[int | None],
    merging_pages_unread: Iterable[int | None],
) -> Reconciliation:
    kernel_before, kernel_after = _mappings(before), _mappings(after)
    drift = (
        None if kernel_before is None or kernel_after is None else abs(kernel_after - kernel_before)
    )
    unread = sum(p or 0 for p in merging_pages_unread)
    reasons = []
    if drift:
        reasons.append(f"KSM merged or unmerged {drift} pages while the audit read")
    if unread:
        reasons.append(f"{unread} merging pages belong to processes the audit could not read")
    if after.get("use_zero_pages") and (after.get("ksm_zero_pages") or 0):
        reasons.append(
            f"{after['ksm_zero_pages']} empty pages are merged into the zero page"
            " (use_zero_pages): not KSM frames, counted in neither total"
        )
    return Reconciliation(
        audit_mappings=sharing.mappings,
        audit_frames=sharing.frames,
        kernel_mappings_before=kernel_before,
        kernel_mappings_after=kernel_after,
        kernel_frames_before=before.get("pages_shared"),
        kernel_frames_after=after.get("pages_shared"),
        merging_pages_read=sum(p or 0 for p in merging_pages_read),
        unread_merging_pages=unread,
        drift=drift,
        reasons=tuple(reasons),
    )


@dataclass(frozen=True, slots=True)
class SharingSeen:
    """The last audit's counts as the status views show them, or why there are none."""

    tenant_by: str  # --tenant-by as given
    sharing: Sharing | None  # None: the audit could not see frames
    reason: str = ""  # why not, in one line
    complete: bool = True
    finished_at: float = 0.0  # Unix time

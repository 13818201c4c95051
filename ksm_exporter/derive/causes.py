"""Why a process merges little or nothing: the first cause that holds, in the order a person
would check, each with the kernel files it stands on.

The chain (`explain`) is pure: it takes what has been read (`ProcessFacts`, `HostFacts`) and
answers with an `Explanation`, or with `Needs` naming the one input it lacks to go on, which
the caller reads and asks again. So a file is read only where a cause needs it: smaps (a walk
of every page table of the process) only once KSM runs and the process is registered.

Each check holds (True), does not (False) or cannot be told (None, with the reason). Nothing
is stated as a cause unless the kernel's counters prove it; where they cannot tell, the
answer is "unknown" with the reason. The checks, in order:

1. KSM is absent, stopped (run=0) or unmerging (run=2), with the tuner that runs here and its
   rule where one does (mm/ksm.c: run_store()).
2. The process is not registered: no `ksm_mergeable: yes`/`ksm_merge_any: yes` in ksm_stat
   (6.14+), no area flagged `mg` in smaps on older kernels (VM_MERGEABLE); QEMU's
   mem-merge=off; a systemd unit's MemoryKSM=yes without ksm_merge_any.
3. ksmd has not reached it: it has fewer rmap items than half its registered resident
   anonymous pages (ksmd gives a page an rmap item at its first visit:
   get_next_rmap_item() in scan_get_next_rmap_item()).
4. Its pages change faster than ksmd passes: of its tracked, unmerged pages, more than half
   must be volatile, since the host's pages_unshared is too small to hold them (a page enters
   the unstable tree only when its checksum did not change since ksmd's last visit:
   cmp_and_merge_page()). Not told while smart_scan = 1: a page should_skip_rmap_item()
   skips leaves the unstable tree until its next visit and counts as volatile, changing or
   not (seen on this machine: 4,096 unique pages, pages_unshared 0, pages_volatile 4,096).
5. Its registered memory is mostly in transparent huge pages, which no merge has split
   (try_to_merge_one_page() splits a large folio only to merge a page of it).
6. Its content is unique: more than half of its tracked, unmerged pages must be unshared
   (stable, in the unstable tree, nothing identical), since the host's pages_volatile is too
   small to hold them.
7. Merged pages copied again on write (vmstat's cow_ksm, ksm_swpin_copy): the kernel counts
   them host-wide since boot, not per process, so this check only rules the cause out (none
   copied) or says it cannot be told; it is never stated as the cause.

Before 4: it merges, but with the zero page (use_zero_pages): counted in ksm_zero_pages, not
in ksm_merging_pages. That explains the counters before any reason it would not merge.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, get_args

from ksm_exporter.derive.other_tuners import TunerChoice
from ksm_exporter.sources.ksm_files import RUN_OFFLINE
from ksm_exporter.sources.ksm_stat import KsmStat
from ksm_exporter.sources.smaps import MemorySizes, MergeableAreas, Unreadable
from ksm_exporter.sources.sysfs import KsmSysfs
from ksm_exporter.sources.systemd_unit import MemoryKsmSetting
from ksm_exporter.sources.thp import HugePages
from ksm_exporter.sources.vmstat import KsmEvents

Reason = Literal[
    "merges_well",
    "ksm_unavailable",
    "ksm_stopped",
    "ksm_unmerging",
    "not_registered",
    "qemu_mem_merge_off",
    "memory_ksm_not_applied",
    "not_reached",
    "volatile",
    "huge_pages",
    "unique",
    "zero_pages",
    "copy_on_write",  # a check's key only: the kernel's counts never make it a cause
    "unknown",
]
# The bounded set of reasons ksm_process_merging_little_info's label may take.
REASONS: tuple[Reason, ...] = tuple(
    reason for reason in get_args(Reason) if reason not in ("merges_well", "copy_on_write")
)
# A process merges little when fewer than 1 in MERGES_LITTLE_DIVISOR of the pages ksmd tracks
# of it are merged (ksm_merging_pages against ksm_rmap_items), or ksmd tracks none yet.
MERGES_LITTLE_DIVISOR = 20


def merges_little(stat: KsmStat) -> bool:
    """The cheap test a scrape runs on each registered process: nothing else is read for a
    process that merges well. Unknown counters (kernels before 6.1) never flag one."""
    rmap, merging = stat.rmap_items, stat.merging_pages
    if rmap is None or merging is None:
        return False
    return merging * MERGES_LITTLE_DIVISOR < rmap or rmap == 0


@dataclass(frozen=True, slots=True)
class Evidence:
    path: str  # the kernel file, or the command line
    value: str


@dataclass(frozen=True, slots=True)
class Check:
    reason: Reason
    holds: bool | None  # None: cannot be told, `sentence` says why
    sentence: str
    evidence: tuple[Evidence, ...] = ()


@dataclass(frozen=True, slots=True)
class Explanation:
    pid: int
    checks: tuple[Check, ...]  # in the order made, the one that holds last

    @property
    def cause(self) -> Check | None:
        last = self.checks[-1] if self.checks else None
        return last if last is not None and last.holds else None

    @property
    def reason(self) -> Reason:
        cause = self.cause
        return cause.reason if cause is not None else "unknown"

    @property
    def sentence(self) -> str:
        cause = self.cause
        if cause is not None:
            return cause.sentence
        unknown = [check.sentence for check in self.checks if check.holds is None]
        return "; ".join(unknown) if unknown else "none of the checks holds"


@dataclass(frozen=True, slots=True)
class TunerAtWork:
    """A tuner that runs on this host (or the kernel's advisor, active), and what its rule
    gives now."""

    name: str
    pid: int | None
    choice: TunerChoice | None = None
    rule: str = ""  # the rule in words where no TunerChoice models it (the kernel advisor)


class NotRead(enum.Enum):
    """An input not read yet; `Needs` names it."""

    NOT_READ = "not read"


NOT_READ = NotRead.NOT_READ


@dataclass(frozen=True, slots=True)
class HostFacts:
    ksm: KsmSysfs
    ksm_dir: str
    page_size: int
    # The tuners that run here: asked for (a walk of every process) only where a cause
    # names what set the settings.
    tuners: tuple[TunerAtWork, ...] | NotRead = NOT_READ
    huge_pages: HugePages | Unreadable | None = None
    events: KsmEvents | Unreadable | None = None
    vmstat_path: str = "/proc/vmstat"
    thp_path: str = "/sys/kernel/mm/transparent_hugepage/enabled"


Input = Literal["memory", "memory_ksm", "huge_pages", "events", "tuners", "command_line"]


@dataclass(frozen=True, slots=True)
class Needs:
    what: Input


@dataclass(frozen=True, slots=True)
class ProcessFacts:
    """What has been read of one process. `stat` is None when the process exited."""

    pid: int
    stat: KsmStat | Unreadable | None
    stat_path: str
    cmdline_path: str = ""
    # What a QEMU command line says keeps its RAM out of KSM; read only for a process that is
    # not registered.
    qemu_mem_merge_off: str | NotRead | None = NOT_READ
    # The registered memory: smaps' `mg` areas, or smaps_rollup where ksm_merge_any makes
    # every area registered.
    memory: MergeableAreas | MemorySizes | Unreadable | NotRead = NOT_READ
    memory_path: str = ""
    memory_ksm: MemoryKsmSetting | NotRead | None = NOT_READ
    extra: tuple[Evidence, ...] = field(default=())


def _ksm_file(host: HostFacts, name: str) -> Evidence:
    return Evidence(f"{host.ksm_dir}/{name}", str(host.ksm.values.get(name)))


def _tuner_sentence(tuner: TunerAtWork) -> str:
    where = f" (pid {tuner.pid})" if tuner.pid is not None else ""
    rule = tuner.rule or (tuner.choice.reason if tuner.choice is not None else "")
    return f"{tuner.name} runs here{where}" + (f": {rule}" if rule else "")


def _check_ksm(host: HostFacts) -> Check | Needs:
    ksm = host.ksm
    if not ksm.available:
        return Check(
            "ksm_unavailable",
            True,
            "the kernel has no KSM, or its files cannot be read",
            (Evidence(host.ksm_dir, "absent or unreadable"),),
        )
    if ksm.run is None:
        return Check("ksm_stopped", None, f"{host.ksm_dir}/run cannot be read")
    run = ksm.run & ~RUN_OFFLINE
    evidence = (_ksm_file(host, "run"),)
    if run in (0, 2):
        return _stopped_by(host, run, evidence)
    if ksm.run & RUN_OFFLINE:
        return Check(
            "ksm_stopped",
            True,
            "ksmd is paused while memory is taken offline (KSM_RUN_OFFLINE in run)",
            evidence,
        )
    return Check("ksm_stopped", False, "KSM runs (run = 1)", evidence)


def _stopped_by(host: HostFacts, run: int, evidence: tuple[Evidence, ...]) -> Check | Needs:
    """KSM stopped (run = 0) or unmerging (run = 2), and the tuners that run here."""
    if isinstance(host.tuners, NotRead):
        return Needs("tuners")
    by = "; ".join(_tuner_sentence(t) for t in host.tuners)
    who = by or "no tuner known to the exporter runs here: an operator or a script set it"
    if run == 0:
        return Check("ksm_stopped", True, f"KSM is stopped (run = 0); {who}", evidence)
    return Check("ksm_unmerging", True, f"KSM is unmerging every page (run = 2); {who}", evidence)


def _stat_line(facts: ProcessFacts, key: str, value: int | bool | None) -> Evidence:
    if value is None:
        shown = "absent"
    elif isinstance(value, bool):
        shown = "yes" if value else "no"
    else:
        shown = str(value)
    return Evidence(facts.stat_path, f"{key}: {shown}")


def _check_registered(facts: ProcessFacts, stat: KsmStat) -> Check | Needs:  # noqa: PLR0911
    mergeable, merge_any = stat.get("mergeable"), stat.get("merge_any")
    evidence: tuple[Evidence, ...] = (
        _stat_line(facts, "ksm_mergeable", mergeable),
        _stat_line(facts, "ksm_merge_any", merge_any),
        _stat_line(facts, "ksm_rmap_items", stat.rmap_items),
    )
    if mergeable is True or merge_any is True or stat.rmap_items or stat.merging_pages:
        return Check("not_registered", False, "registered with KSM", evidence)
    if mergeable is None:  # a kernel before 6.14: the `mg` flags tell
        if isinstance(facts.memory, NotRead):
            return Needs("memory")
        memory = facts.memory
        if isinstance(memory, Unreadable):
            return Check(
                "not_registered",
                None,
                f"whether it registered any memory cannot be told: {memory.path}: "
                f"{memory.reason} (this kernel's ksm_stat has no ksm_mergeable line)",
                evidence,
            )
        areas = memory.areas if isinstance(memory, MergeableAreas) else 0
        evidence = (*evidence, Evidence(facts.memory_path, f"{areas} areas with VmFlags mg"))
        if areas:
            return Check("not_registered", False, "registered with KSM", evidence)
    if isinstance(facts.qemu_mem_merge_off, NotRead):
        return Needs("command_line")
    if facts.qemu_mem_merge_off is not None:
        return Check(
            "qemu_mem_merge_off",
            True,
            f"QEMU was started with {facts.qemu_mem_merge_off}: it never registers its guest's "
            "RAM (libvirt's <nosharepages/>, Proxmox's allow-ksm: 0)",
            (*evidence, Evidence(facts.cmdline_path, facts.qemu_mem_merge_off)),
        )
    if isinstance(facts.memory_ksm, NotRead):
        return Needs("memory_ksm")
    unit = facts.memory_ksm
    if unit is not None and unit.enabled and merge_any is not True:
        return Check(
            "memory_ksm_not_applied",
            True,
            f"its unit {unit.unit} asks for MemoryKSM=yes, but PR_SET_MEMORY_MERGE is not set "
            "on the process (ksm_merge_any is not yes): the unit was not restarted since, or "
            "the process did not inherit it",
            (*evidence, Evidence(unit.path, "MemoryKSM=yes")),
        )
    return Check(
        "not_registered",
        True,
        "it registered no memory with KSM (no madvise(MADV_MERGEABLE), no "
        "prctl(PR_SET_MEMORY_MERGE))",
        evidence,
    )


def _registered_sizes(memory: MergeableAreas | MemorySizes) -> MemorySizes:
    return memory.sizes if isinstance(memory, MergeableAreas) else memory


def _full_pass_seconds(host: HostFacts, untracked: int) -> float | None:
    """The least time a full pass takes at the current pace: every tracked page of the host
    and the process's untracked ones, pages_to_scan a wake-up, sleep_millisecs between."""
    ksm = host.ksm
    counts = (ksm.pages_shared, ksm.pages_sharing, ksm.pages_unshared, ksm.pages_volatile)
    if ksm.pages_to_scan is None or ksm.sleep_millisecs is None or None in counts:
        return None
    if ksm.pages_to_scan == 0:
        return float("inf")
    tracked = sum(c for c in counts if c is not None) + untracked
    return -(-tracked // ksm.pages_to_scan) * ksm.sleep_millisecs / 1000


def _check_reached(facts: ProcessFacts, stat: KsmStat, host: HostFacts) -> Check | Needs:
    if isinstance(facts.memory, NotRead):
        return Needs("memory")
    memory = facts.memory
    if isinstance(memory, Unreadable):
        return Check(
            "not_reached",
            None,
            f"its registered size cannot be read: {memory.path}: {memory.reason}",
        )
    anonymous = _registered_sizes(memory).anonymous_bytes
    rmap = stat.rmap_items
    if anonymous is None or rmap is None:
        return Check("not_reached", None, "its registered size or rmap items are not shown")
    pages = anonymous // host.page_size
    evidence = (
        Evidence(facts.memory_path, f"Anonymous {anonymous // 1024} kB registered"),
        _stat_line(facts, "ksm_rmap_items", rmap),
        _ksm_file(host, "pages_to_scan"),
        _ksm_file(host, "sleep_millisecs"),
        _ksm_file(host, "full_scans"),
    )
    if rmap * 2 >= pages:
        return Check(
            "not_reached",
            False,
            f"ksmd tracks {rmap} of its {pages} registered resident pages",
            evidence,
        )
    if isinstance(host.tuners, NotRead):
        return Needs("tuners")
    seconds = _full_pass_seconds(host, pages - rmap)
    pace = f"; at this pace a full pass takes at least {seconds:.0f} s" if seconds else ""
    tuned = "".join(
        f"; pages_to_scan is set by {_tuner_sentence(t)}" for t in host.tuners if t.choice or t.rule
    )
    return Check(
        "not_reached",
        True,
        f"ksmd has not reached it yet: it tracks {rmap} of its {pages} registered resident "
        f"pages{pace}{tuned}",
        evidence,
    )


def _unmerged(stat: KsmStat) -> int | None:
    rmap, merging = stat.rmap_items, stat.merging_pages
    if rmap is None or merging is None:
        return None
    return max(0, rmap - merging - (stat.zero_pages or 0))


def _check_volatile(facts: ProcessFacts, stat: KsmStat, host: HostFacts) -> Check:
    unmerged, unshared = _unmerged(stat), host.ksm.pages_unshared
    if unmerged is None or unshared is None:
        return Check("volatile", None, "its rmap items, merging pages or pages_unshared unknown")
    if host.ksm.smart_scan:
        # should_skip_rmap_item() takes a skipped page out of the unstable tree: until its
        # next visit it counts as volatile, whether it changes or not.
        return Check(
            "volatile",
            None,
            "whether its pages change cannot be told while smart_scan = 1: pages ksmd skips "
            "count as volatile too",
            (_ksm_file(host, "smart_scan"),),
        )
    least = unmerged - unshared  # its unshared pages are at most the host's
    evidence = (
        _stat_line(facts, "ksm_rmap_items", stat.rmap_items),
        _stat_line(facts, "ksm_merging_pages", stat.merging_pages),
        _ksm_file(host, "pages_unshared"),
        _ksm_file(host, "pages_volatile"),
    )
    holds = unmerged > 0 and least * 2 > unmerged
    return Check(
        "volatile",
        holds,
        f"its pages change faster than ksmd passes: at least {least} of its {unmerged} tracked, "
        "unmerged pages were volatile at ksmd's last visit (changed since the visit before, "
        "or seen once only)"
        if holds
        else f"at most {unshared} of its {unmerged} tracked, unmerged pages can be stable",
        evidence,
    )


def _check_huge(facts: ProcessFacts, host: HostFacts) -> Check | Needs:
    if isinstance(facts.memory, NotRead):
        return Needs("memory")
    if host.huge_pages is None:
        return Needs("huge_pages")
    memory = facts.memory
    if isinstance(memory, Unreadable):
        return Check("huge_pages", None, f"{memory.path}: {memory.reason}")
    sizes = _registered_sizes(memory)
    huge, anonymous = sizes.anon_huge_bytes, sizes.anonymous_bytes
    if huge is None or not anonymous:
        return Check("huge_pages", None, "no AnonHugePages or Anonymous line")
    thp = host.huge_pages
    mode = thp.enabled if isinstance(thp, HugePages) else f"unknown ({thp.reason})"
    evidence = [
        Evidence(facts.memory_path, f"AnonHugePages {huge // 1024} kB"),
        Evidence(facts.memory_path, f"Anonymous {anonymous // 1024} kB"),
        Evidence(host.thp_path, mode),
    ]
    if isinstance(thp, HugePages) and thp.pages_collapsed is not None:
        evidence.append(
            Evidence(
                host.thp_path.replace("enabled", "khugepaged/pages_collapsed"),
                str(thp.pages_collapsed),
            )
        )
    holds = huge * 2 > anonymous
    return Check(
        "huge_pages",
        holds,
        f"{huge * 100 // anonymous}% of its registered memory is still in transparent huge "
        f"pages (THP {mode}): ksmd splits a huge page only to merge a page of it, so none of "
        "these found an identical page yet (or their split failed)"
        if holds
        else f"{huge * 100 // anonymous}% of its registered memory is in huge pages",
        tuple(evidence),
    )


def _check_unique(facts: ProcessFacts, stat: KsmStat, host: HostFacts) -> Check:
    unmerged, volatile = _unmerged(stat), host.ksm.pages_volatile
    if unmerged is None or volatile is None:
        return Check("unique", None, "its rmap items, merging pages or pages_volatile unknown")
    least = unmerged - volatile  # its volatile pages are at most the host's
    holds = unmerged > 0 and least * 2 > unmerged
    evidence = (
        _stat_line(facts, "ksm_rmap_items", stat.rmap_items),
        _stat_line(facts, "ksm_merging_pages", stat.merging_pages),
        _ksm_file(host, "pages_volatile"),
        _ksm_file(host, "pages_unshared"),
    )
    if holds:
        sentence = (
            f"its content is unique: at least {least} of its {unmerged} tracked, unmerged pages "
            "are stable and nothing identical was found (pages_unshared)"
        )
    elif unmerged > 0:
        sentence = (
            "whether its unmerged pages are volatile or unique cannot be told: other "
            "processes' pages are mixed into pages_volatile and pages_unshared"
        )
        return Check("unique", None, sentence, evidence)
    else:
        sentence = "every page ksmd tracks of it is merged"
    return Check("unique", holds, sentence, evidence)


def _check_zero(facts: ProcessFacts, stat: KsmStat, host: HostFacts) -> Check:
    zero, merging = stat.zero_pages, stat.merging_pages
    evidence = (
        _stat_line(facts, "ksm_zero_pages", zero),
        _stat_line(facts, "ksm_merging_pages", merging),
        _ksm_file(host, "use_zero_pages"),
    )
    rmap = stat.rmap_items
    # It merges, with the zero page: counted in its zero pages, not its merging pages.
    holds = (
        zero is not None
        and merging is not None
        and rmap is not None
        and zero > merging
        and (zero + merging) * MERGES_LITTLE_DIVISOR >= rmap
    )
    return Check(
        "zero_pages",
        holds,
        f"its {zero} merged empty pages map the zero page (use_zero_pages): counted in "
        "ksm_zero_pages, not in ksm_merging_pages"
        if holds
        else "few of its pages merged with the zero page",
        evidence,
    )


def _check_cow(host: HostFacts) -> Check | Needs:
    if host.events is None:
        return Needs("events")
    events = host.events
    if isinstance(events, Unreadable):
        return Check("copy_on_write", None, f"{events.path}: {events.reason}")
    if events.cow_ksm is None and events.ksm_swpin_copy is None:
        return Check("copy_on_write", None, "this kernel's vmstat has no cow_ksm or ksm_swpin_copy")
    lost = (events.cow_ksm or 0) + (events.ksm_swpin_copy or 0)
    evidence = (
        Evidence(host.vmstat_path, f"cow_ksm {events.cow_ksm}"),
        Evidence(host.vmstat_path, f"ksm_swpin_copy {events.ksm_swpin_copy}"),
    )
    if not lost:
        return Check("copy_on_write", False, "no KSM page was copied since boot", evidence)
    # Host-wide counts since boot: they prove that merged pages were lost somewhere, sometime,
    # never that this process's were, so this is never stated as its cause.
    return Check(
        "copy_on_write",
        None,
        f"whether its merged pages are lost to writes cannot be told: {lost} KSM pages were "
        "copied on this host since boot, which the kernel does not count per process",
        evidence,
    )


def explain(facts: ProcessFacts, host: HostFacts) -> Explanation | Needs:  # noqa: PLR0911
    """The checks up to the first that holds, or what must be read to go on."""
    checks: list[Check] = []

    def done(check: Check) -> Explanation:
        return Explanation(facts.pid, (*checks, check))

    stat = facts.stat
    if stat is None:
        return done(Check("unknown", None, f"process {facts.pid} exited while it was explained"))
    ksm = _check_ksm(host)
    if isinstance(ksm, Needs):
        return ksm
    if ksm.holds:
        return done(ksm)
    checks.append(ksm)
    if isinstance(stat, Unreadable):
        return done(Check("unknown", None, f"{stat.path}: {stat.reason}"))
    if not merges_little(stat) and stat.registered:
        return done(
            Check(
                "merges_well",
                True,
                f"it merges well: {stat.merging_pages} of the {stat.rmap_items} pages ksmd "
                "tracks of it are merged",
                (
                    _stat_line(facts, "ksm_merging_pages", stat.merging_pages),
                    _stat_line(facts, "ksm_rmap_items", stat.rmap_items),
                ),
            )
        )
    steps: tuple[Callable[[], Check | Needs], ...] = (
        lambda: _check_registered(facts, stat),
        lambda: _check_reached(facts, stat, host),
        lambda: _check_zero(facts, stat, host),
        lambda: _check_volatile(facts, stat, host),
        lambda: _check_huge(facts, host),
        lambda: _check_unique(facts, stat, host),
        lambda: _check_cow(host),
    )
    for step in steps:
        check = step()
        if isinstance(check, Needs):
            return check
        if check.holds:
            return done(check)
        checks.append(check)
    return Explanation(facts.pid, tuple(checks))

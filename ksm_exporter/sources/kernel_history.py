"""Which mainline release brought each KSM file, `ksm_stat` line and feature the exporter
reads: the one place a kernel version is stated. docs/metrics.md's kernel column and the
"`name` (since X.Y)" of the guides are generated from it (`make docs`); the releases the
dashboards, rules and messages name are checked against it (tests/test_kernel_history.py).

Each release is the one whose merge window took the named commit (Andrew Morton's "[GIT PULL]
MM updates for X.Y-rc1" lists them: the advisor's series in 6.8's, smart scanning in 6.7's,
pages_scanned and the KSM zero pages in 6.6's). tests/test_kernel_history.py holds every row
against the lab's captures of real kernels (tests/fixtures/kernels/): a file is absent from
every captured kernel older than its release and present in every one as new or newer.
Distribution kernels may backport a file to an older series; the release here is mainline's.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Where(Enum):
    SYSFS = "<ksm>"  # a file of /sys/kernel/mm/ksm
    KSM_STAT = "ksm_stat"  # a line of /proc/<pid>/ksm_stat
    PROC = "/proc/<pid>"  # a file of /proc/<pid>
    FEATURE = "feature"  # a behaviour no file of its own names


@dataclass(frozen=True, slots=True)
class Arrival:
    name: str
    where: Where
    release: tuple[int, ...]  # (6, 8); (2, 6, 32) for KSM's first release
    commit: str  # the subject of the mainline commit that added it
    needs: str = ""  # a kernel option without which it is absent even on newer kernels

    @property
    def shown(self) -> str:
        return ".".join(map(str, self.release))


FIRST_KSM = (2, 6, 32)  # mm/ksm.c's first release
SYSFS, KSM_STAT, PROC, FEATURE = Where.SYSFS, Where.KSM_STAT, Where.PROC, Where.FEATURE
ARRIVALS: tuple[Arrival, ...] = (
    Arrival("run", SYSFS, FIRST_KSM, "ksm: Kernel SamePage Merging"),
    Arrival("pages_to_scan", SYSFS, FIRST_KSM, "ksm: Kernel SamePage Merging"),
    Arrival("sleep_millisecs", SYSFS, FIRST_KSM, "ksm: Kernel SamePage Merging"),
    Arrival("pages_shared", SYSFS, FIRST_KSM, "ksm: Kernel SamePage Merging"),
    Arrival("pages_sharing", SYSFS, FIRST_KSM, "ksm: Kernel SamePage Merging"),
    Arrival("pages_unshared", SYSFS, FIRST_KSM, "ksm: pages_unshared and pages_volatile"),
    Arrival("pages_volatile", SYSFS, FIRST_KSM, "ksm: pages_unshared and pages_volatile"),
    Arrival("full_scans", SYSFS, FIRST_KSM, "ksm: Kernel SamePage Merging (2.6.32 series)"),
    Arrival(
        "merge_across_nodes", SYSFS, (3, 9), "ksm: allow trees per NUMA node", needs="CONFIG_NUMA"
    ),
    Arrival(
        "use_zero_pages",
        SYSFS,
        (4, 11),
        "mm/ksm: improve deduplication of zero pages with colouring",
    ),
    *(
        Arrival(
            name, SYSFS, (4, 13), "ksm: introduce ksm_max_page_sharing per page deduplication limit"
        )
        for name in (
            "max_page_sharing",
            "stable_node_chains",
            "stable_node_dups",
            "stable_node_chains_prune_millisecs",
        )
    ),
    Arrival("ksm_merging_pages", PROC, (5, 19), "ksm: count ksm merging pages for each process"),
    Arrival(
        "ksm_rmap_items", KSM_STAT, (6, 1), "ksm: count allocated ksm rmap_items for each process"
    ),
    Arrival("general_profit", SYSFS, (6, 4), "mm: add new KSM process and sysfs knobs"),
    Arrival("ksm_merging_pages", KSM_STAT, (6, 4), "mm: add new KSM process and sysfs knobs"),
    Arrival("ksm_process_profit", KSM_STAT, (6, 4), "mm: add new KSM process and sysfs knobs"),
    Arrival("PR_SET_MEMORY_MERGE", FEATURE, (6, 4), "mm: add new api to enable ksm per process"),
    Arrival("ksm_zero_pages", SYSFS, (6, 6), "ksm: count all zero pages placed by KSM"),
    Arrival("ksm_zero_pages", KSM_STAT, (6, 6), "ksm: add ksm zero pages for each process"),
    Arrival("pages_scanned", SYSFS, (6, 6), "mm/ksm: add pages scanned metric"),
    Arrival("smart_scan", SYSFS, (6, 7), 'mm/ksm: add "smart" page scanning mode'),
    Arrival("pages_skipped", SYSFS, (6, 7), "mm/ksm: add pages_skipped metric"),
    Arrival("scan-time advisor", FEATURE, (6, 8), "mm/ksm: add ksm advisor"),
    *(
        Arrival(name, SYSFS, (6, 8), "mm/ksm: add sysfs knobs for advisor")
        for name in (
            "advisor_mode",
            "advisor_max_cpu",
            "advisor_min_pages_to_scan",
            "advisor_max_pages_to_scan",
            "advisor_target_scan_time",
        )
    ),
    Arrival(
        "ksm_merge_any", KSM_STAT, (6, 14), "ksm: add ksm involvement information for each process"
    ),
    Arrival(
        "ksm_mergeable", KSM_STAT, (6, 14), "ksm: add ksm involvement information for each process"
    ),
)


def arrivals(name: str) -> list[Arrival]:
    """Every row for `name`, oldest first (ksm_merging_pages was a file before a line)."""
    return sorted((row for row in ARRIVALS if row.name == name), key=lambda row: row.release)


def first(name: str) -> Arrival:
    """The oldest way the kernel gives `name`; KeyError where the table has no row for it."""
    rows = arrivals(name)
    if not rows:
        raise KeyError(f"{name}: not in ksm_exporter/sources/kernel_history.py")
    return rows[0]


def since(name: str) -> str:
    """The release that brought `name`, as "6.8"."""
    return first(name).shown

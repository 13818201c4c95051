"""Every file of `<sysfs>/kernel/mm/ksm/`, declared once: name, parser, metric, HELP, unit.

The snapshot's values, the metric families, the documentation table and the tests all come
from this table, so serving one more kernel file is one line here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from ksm_exporter.sources.kernel_file import parse_signed, parse_unsigned

RUN_RUNNING = 1  # `run` while ksmd merges (ksm.c: KSM_RUN_MERGE)
RUN_UNMERGE = 2  # unmerge and free every rmap item (KSM_RUN_UNMERGE)
RUN_OFFLINE = 4  # added to `run` while memory is taken offline; ksmd waits (KSM_RUN_OFFLINE)


def run_setting(run: int) -> int:
    """`run` as an operator or a tuner wrote it: the kernel adds KSM_RUN_OFFLINE while memory
    goes offline and takes it away after (ksm_memory_callback())."""
    return run & ~RUN_OFFLINE


def merging_on(run: int | None) -> bool:
    """KSM is set to merge (run=1), whether or not memory is going offline meanwhile."""
    return run is not None and run_setting(run) == RUN_RUNNING


def ksmd_scanning(run: int | None) -> bool:
    """ksmd scans now: `run` is KSM_RUN_MERGE alone. While memory goes offline it waits in
    wait_while_offlining(), and stopped or unmerging it does not scan at all."""
    return run == RUN_RUNNING


@dataclass(frozen=True, slots=True)
class KsmFile:
    """One numeric KSM file and the metric it becomes (value / divisor)."""

    name: str
    metric: str
    help: str
    kind: Literal["gauge", "counter"] = "gauge"
    divisor: int = 1  # 1000 turns milliseconds into seconds, 100 percent into a ratio
    unit: str = "pages"  # for the documentation table
    note: str = ""  # for the documentation table, after the file's path
    parse: Callable[[bytes], int] = parse_unsigned


KSM_FILES: tuple[KsmFile, ...] = (
    KsmFile(
        "run",
        "ksm_run",
        "KSM run state as the file reads: 0 stopped, 1 running, 2 unmerge all; "
        "4 is added while memory is being taken offline.",
        unit="state (0 stop, 1 run, 2 unmerge; 4 added while memory goes offline, "
        'so 5 is "running, paused")',
    ),
    KsmFile("pages_to_scan", "ksm_pages_to_scan", "Pages ksmd scans before it sleeps."),
    KsmFile(
        "sleep_millisecs",
        "ksm_sleep_seconds",
        "Time ksmd sleeps between scan batches.",
        divisor=1000,
        unit="seconds",
    ),
    KsmFile("pages_shared", "ksm_pages_shared", "Shared KSM pages in use (one per group)."),
    KsmFile(
        "pages_sharing",
        "ksm_pages_sharing",
        "Page mappings deduplicated onto shared KSM pages, beyond the first of each.",
    ),
    KsmFile(
        "pages_unshared",
        "ksm_pages_unshared",
        "Pages unique but repeatedly checked for merging.",
    ),
    KsmFile(
        "pages_volatile",
        "ksm_pages_volatile",
        "Pages changing too fast to be placed in a tree.",
    ),
    KsmFile(
        "full_scans",
        "ksm_full_scans_total",
        "Full scans of all mergeable areas completed (resets when run is set to 2).",
        kind="counter",
        note="(resets when `run` is set to 2)",
        unit="scans",
    ),
    KsmFile(
        "merge_across_nodes",
        "ksm_merge_across_nodes",
        "1 when pages from different NUMA nodes may merge.",
        unit="boolean",
        note="(NUMA kernels)",
    ),
    KsmFile(
        "use_zero_pages",
        "ksm_use_zero_pages",
        "1 when empty pages merge with the zero page.",
        unit="boolean",
    ),
    KsmFile(
        "max_page_sharing",
        "ksm_max_page_sharing",
        "Most mappings one KSM page may have.",
        unit="mappings",
    ),
    KsmFile(
        "stable_node_chains",
        "ksm_stable_node_chains",
        "Stable node chains (hit max_page_sharing).",
        unit="chains",
    ),
    KsmFile(
        "stable_node_dups",
        "ksm_stable_node_dups",
        "Duplicated stable nodes in chains.",
        unit="nodes",
    ),
    KsmFile(
        "stable_node_chains_prune_millisecs",
        "ksm_stable_node_chains_prune_seconds",
        "How often stable node chains are pruned of stale nodes.",
        divisor=1000,
        unit="seconds",
    ),
    KsmFile(
        "general_profit",
        "ksm_general_profit_bytes",
        "Memory KSM saves net of its rmap_item metadata; negative when metadata costs more.",
        parse=parse_signed,
        unit="bytes (signed)",
    ),
    KsmFile(
        "ksm_zero_pages",
        "ksm_zero_pages",
        "Empty pages merged with the kernel zero page.",
    ),
    KsmFile(
        "pages_scanned",
        "ksm_pages_scanned_total",
        "Pages scanned by ksmd.",
        kind="counter",
    ),
    KsmFile(
        "smart_scan",
        "ksm_smart_scan",
        "1 when ksmd skips pages that did not merge recently.",
        unit="boolean",
    ),
    KsmFile(
        "pages_skipped",
        "ksm_pages_skipped_total",
        "Pages skipped by smart scanning because they did not merge recently.",
        kind="counter",
    ),
    KsmFile(
        "advisor_max_cpu",
        "ksm_advisor_max_cpu_ratio",
        "Most CPU, as a share of one core, the scan-time advisor lets ksmd use.",
        divisor=100,
        unit="ratio of one CPU",
    ),
    KsmFile(
        "advisor_target_scan_time",
        "ksm_advisor_target_scan_time_seconds",
        "Full-scan time the scan-time advisor aims for.",
        unit="seconds",
    ),
    KsmFile(
        "advisor_min_pages_to_scan",
        "ksm_advisor_min_pages_to_scan",
        "pages_to_scan the advisor starts from when switched on; not a floor.",
    ),
    KsmFile(
        "advisor_max_pages_to_scan",
        "ksm_advisor_max_pages_to_scan",
        "Highest pages_to_scan the advisor sets.",
    ),
)

# The one KSM file that is not a number: `[none] scan-time`, served as ksm_advisor_mode{mode}.
ADVISOR_MODE_FILE = "advisor_mode"


@dataclass(frozen=True, slots=True)
class Declared:
    """A table of KSM files as the readers look it up; passed to them (DECLARED by default)."""

    numbers: Mapping[str, KsmFile]  # file name -> declaration
    names: tuple[str, ...]  # every file the exporter reads, in the order it reads them


def index_of(files: tuple[KsmFile, ...]) -> Declared:
    numbers = {spec.name: spec for spec in files}
    return Declared(numbers, (*numbers, ADVISOR_MODE_FILE))


DECLARED = index_of(KSM_FILES)

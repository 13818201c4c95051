"""KSM state, counters and derived savings as metric families."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ksm_exporter.derive.savings import Savings
from ksm_exporter.sources.sysfs import KsmSysfs


@dataclass(frozen=True, slots=True)
class SysfsMetric:
    name: str
    attribute: str
    help: str
    kind: Literal["gauge", "counter"] = "gauge"
    divisor: int = 1


SYSFS_METRICS: tuple[SysfsMetric, ...] = (
    SysfsMetric("ksm_run", "run", "KSM run state: 0 stopped, 1 running, 2 unmerge all."),
    SysfsMetric("ksm_pages_to_scan", "pages_to_scan", "Pages ksmd scans before it sleeps."),
    SysfsMetric(
        "ksm_sleep_seconds",
        "sleep_millisecs",
        "Time ksmd sleeps between scan batches.",
        divisor=1000,
    ),
    SysfsMetric("ksm_pages_shared", "pages_shared", "Shared KSM pages in use (one per group)."),
    SysfsMetric(
        "ksm_pages_sharing", "pages_sharing", "Page mappings deduplicated onto shared KSM pages."
    ),
    SysfsMetric(
        "ksm_pages_unshared", "pages_unshared", "Pages unique but repeatedly checked for merging."
    ),
    SysfsMetric(
        "ksm_pages_volatile", "pages_volatile", "Pages changing too fast to be placed in a tree."
    ),
    SysfsMetric(
        "ksm_full_scans_total",
        "full_scans",
        "Full scans of all mergeable areas completed (resets when run is set to 2).",
        kind="counter",
    ),
    SysfsMetric(
        "ksm_pages_scanned_total", "pages_scanned", "Pages scanned by ksmd.", kind="counter"
    ),
    SysfsMetric(
        "ksm_pages_skipped_total",
        "pages_skipped",
        "Pages skipped by smart scanning because they did not merge recently.",
        kind="counter",
    ),
    SysfsMetric(
        "ksm_zero_pages", "ksm_zero_pages", "Empty pages merged with the kernel zero page."
    ),
    SysfsMetric(
        "ksm_general_profit_bytes",
        "general_profit",
        "Memory KSM saves net of its rmap_item metadata; negative when metadata costs more.",
    ),
    SysfsMetric("ksm_max_page_sharing", "max_page_sharing", "Most mappings one KSM page may have."),
    SysfsMetric(
        "ksm_stable_node_chains", "stable_node_chains", "Stable node chains (hit max_page_sharing)."
    ),
    SysfsMetric("ksm_stable_node_dups", "stable_node_dups", "Duplicated stable nodes in chains."),
    SysfsMetric(
        "ksm_stable_node_chains_prune_seconds",
        "stable_node_chains_prune_millisecs",
        "How often stable node chains are pruned of stale nodes.",
        divisor=1000,
    ),
    SysfsMetric(
        "ksm_merge_across_nodes",
        "merge_across_nodes",
        "1 when pages from different NUMA nodes may merge.",
    ),
    SysfsMetric(
        "ksm_use_zero_pages", "use_zero_pages", "1 when empty pages merge with the zero page."
    ),
    SysfsMetric(
        "ksm_smart_scan", "smart_scan", "1 when ksmd skips pages that did not merge recently."
    ),
    SysfsMetric(
        "ksm_advisor_max_cpu_ratio",
        "advisor_max_cpu",
        "Most CPU, as a share of one core, the scan-time advisor lets ksmd use.",
        divisor=100,
    ),
    SysfsMetric(
        "ksm_advisor_target_scan_time_seconds",
        "advisor_target_scan_time",
        "Full-scan time the scan-time advisor aims for.",
    ),
    SysfsMetric(
        "ksm_advisor_min_pages_to_scan",
        "advisor_min_pages_to_scan",
        "Lowest pages_to_scan the advisor sets.",
    ),
    SysfsMetric(
        "ksm_advisor_max_pages_to_scan",
        "advisor_max_pages_to_scan",
        "Highest pages_to_scan the advisor sets.",
    ),
)


def scaled(value: int, divisor: int) -> float:
    """Milliseconds to seconds and percent to ratio by division, which keeps 70% as 0.7."""
    return value / divisor


def sysfs_families(ksm: KsmSysfs) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "ksm_available",
        "1 when the KSM sysfs directory is readable, 0 when the kernel has no KSM.",
        value=1 if ksm.available else 0,
    )
    for spec in SYSFS_METRICS:
        value = getattr(ksm, spec.attribute)
        if value is None:
            continue
        family = CounterMetricFamily if spec.kind == "counter" else GaugeMetricFamily
        yield family(spec.name, spec.help, value=scaled(value, spec.divisor))
    if ksm.advisor_mode is not None:
        advisor = GaugeMetricFamily(
            "ksm_advisor_mode",
            "KSM advisor mode: 1 for the active mode, 0 for the others.",
            labels=["mode"],
        )
        for mode in ksm.advisor_mode.modes:
            advisor.add_metric([mode], 1 if mode == ksm.advisor_mode.active else 0)
        yield advisor


def savings_families(savings: Savings, page_size: int) -> Iterator[Metric]:
    yield GaugeMetricFamily("ksm_page_size_bytes", "System page size.", value=page_size)
    derived = (
        (
            "ksm_memory_saved_bytes",
            "Memory saved by merging: (pages_sharing + ksm_zero_pages) * page size.",
            savings.saved_bytes,
        ),
        (
            "ksm_memory_saved_ratio",
            "Memory saved by merging as a share of MemTotal.",
            savings.saved_ratio,
        ),
        (
            "ksm_sharing_ratio",
            "pages_sharing / pages_shared: how many mappings each shared page serves.",
            savings.sharing_ratio,
        ),
        (
            "ksm_unshared_ratio",
            "pages_unshared / pages_sharing: scanning effort that merges nothing.",
            savings.unshared_ratio,
        ),
    )
    yield from present_gauges(derived)


def present_gauges(figures: Iterable[tuple[str, str, float | None]]) -> Iterator[Metric]:
    """One gauge per (name, help, value), leaving out the figures that are not known."""
    for name, help_text, value in figures:
        if value is not None:
            yield GaugeMetricFamily(name, help_text, value=value)

"""Per-process KSM figures as metric families."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric

from ksm_exporter.derive.process_selection import (
    ProcessReading,
    count_states,
    process_profit_bytes,
    sum_other,
)
from ksm_exporter.sources.ksm_stat import KsmStat
from ksm_exporter.sources.process_identity import ProcessIdentity
from ksm_exporter.sources.process_sweep import ProcessSweep


@dataclass(frozen=True, slots=True)
class ProcessMetric:
    name: str
    help: str
    needs: str  # the KsmStat attribute the kernel must report for the metric to exist
    value: Callable[[KsmStat, int], int | bool | None]
    other: tuple[str, str] | None = None  # (OtherSums attribute, help) for the rest's sum


PROCESS_METRICS: tuple[ProcessMetric, ...] = (
    ProcessMetric(
        "ksm_process_merging_pages",
        "Pages of the process merged by KSM (ksm_merging_pages).",
        "merging_pages",
        lambda stat, _: stat.merging_pages,
        ("merging_pages", "Merged pages of the registered processes without series of their own."),
    ),
    ProcessMetric(
        "ksm_process_rmap_items",
        "KSM rmap items of the process: pages KSM tracks, 64 bytes of metadata each.",
        "rmap_items",
        lambda stat, _: stat.rmap_items,
        ("rmap_items", "KSM rmap items of the registered processes without series of their own."),
    ),
    ProcessMetric(
        "ksm_process_zero_pages",
        "Empty pages of the process merged with the kernel zero page.",
        "zero_pages",
        lambda stat, _: stat.zero_pages,
        ("zero_pages", "Zero-page merges of the registered processes without series of their own."),
    ),
    ProcessMetric(
        "ksm_process_profit_bytes",
        "Memory KSM saves in the process net of its rmap item metadata; may be negative.",
        "rmap_items",  # the kernel's value, or the formula, which needs the rmap items
        process_profit_bytes,
        ("profit_bytes", "KSM profit of the registered processes without series of their own."),
    ),
    ProcessMetric(
        "ksm_process_merge_any",
        "1 when all of the process's memory is mergeable (prctl PR_SET_MEMORY_MERGE).",
        "merge_any",
        lambda stat, _: stat.merge_any,
    ),
    ProcessMetric(
        "ksm_process_mergeable",
        "1 when the process has memory areas registered with KSM.",
        "mergeable",
        lambda stat, _: stat.mergeable,
    ),
)


def process_families(
    sample: ProcessReading, labels: tuple[str, ...], page_size: int
) -> Iterator[Metric]:
    sweep, selection = sample.sweep, sample.selection
    if not sweep.fields:
        return  # no process has a KSM counters file: a kernel before 5.19
    states = count_states(sweep.registered)
    other = sum_other(selection.other, page_size)
    yield GaugeMetricFamily(
        "ksm_processes_registered",
        "Processes registered with KSM (rmap items or merging pages above 0).",
        value=states.registered,
    )
    yield GaugeMetricFamily(
        "ksm_processes_merging",
        "Processes with pages merged by KSM.",
        value=states.merging,
    )
    yield GaugeMetricFamily(
        "ksm_process_other_processes",
        "Registered processes beyond --collector.process.limit, summed into the other series.",
        value=other.processes,
    )
    unknown = ProcessIdentity()
    for spec in PROCESS_METRICS:
        if spec.needs not in sweep.fields:
            continue
        family = GaugeMetricFamily(spec.name, spec.help, labels=["pid", *labels])
        for process in selection.own:
            value = spec.value(process.stat, page_size)
            if value is None:
                continue
            who = sample.identities.get(process.pid, unknown)
            family.add_metric([str(process.pid), *(getattr(who, k) for k in labels)], value)
        yield family
        if spec.other is not None:
            attribute, help_text = spec.other
            yield GaugeMetricFamily(
                spec.name.replace("ksm_process_", "ksm_process_other_", 1),
                help_text,
                value=getattr(other, attribute),
            )


def sweep_families(sweep: ProcessSweep) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "ksm_exporter_processes_scanned",
        "Processes whose KSM counters the last sweep of procfs looked at.",
        value=sweep.scanned,
    )
    yield GaugeMetricFamily(
        "ksm_exporter_processes_unreadable",
        "Processes whose KSM counters the exporter may not read: it needs root or "
        "CAP_DAC_READ_SEARCH to read other users' processes.",
        value=sweep.unreadable,
    )

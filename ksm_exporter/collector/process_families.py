"""Per-process KSM figures as metric families."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.samples import Sample

from ksm_exporter.derive.causes import Explanation
from ksm_exporter.derive.process_selection import (
    ProcessReading,
    count_states,
    process_value,
    sum_other,
)
from ksm_exporter.sources.ksm_stat import PROCESS_FIELDS, ProcessField
from ksm_exporter.sources.process_identity import ProcessIdentity
from ksm_exporter.sources.process_sweep import ProcessSweep


def process_families(
    sample: ProcessReading,
    labels: tuple[str, ...],
    page_size: int,
    fields: tuple[ProcessField, ...] = PROCESS_FIELDS,
    explanations: Mapping[int, Explanation] | None = None,
) -> Iterator[Metric]:
    """The per-process families, one per declared field this kernel reports, each followed
    by its sum over the processes without series of their own."""
    sweep, selection = sample.sweep, sample.selection
    if not sweep.fields:
        return  # no process has a KSM counters file: a kernel before 5.19
    states = count_states(sweep.registered)
    other = sum_other(selection.other, page_size, fields)
    yield GaugeMetricFamily(
        "ksm_processes_registered",
        "Processes registered with KSM (ksm_mergeable: yes, rmap items or merging pages above 0).",
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
    for spec in fields:
        if (spec.needs or spec.name) not in sweep.fields:
            continue
        family = GaugeMetricFamily(spec.metric, spec.help, labels=["pid", *labels])
        for process in selection.own:
            value = process_value(spec, process.stat, page_size)
            if value is None:
                continue
            who = sample.identities.get(process.pid, unknown)
            # An empty label is no label to Prometheus: left out, as for an absent one.
            named = {k: v for k in labels if (v := who.get(k))}
            family.samples.append(Sample(spec.metric, {"pid": str(process.pid), **named}, value))
        yield family
        if spec.other_help is not None:
            yield GaugeMetricFamily(
                other_metric(spec), spec.other_help, value=other.sums[spec.name]
            )

    guest = GaugeMetricFamily(
        "ksm_process_guest_memory_bytes",
        "Memory size of the QEMU guest the process runs, from its -m option; "
        "ksm_process_merging_pages times the page size over it is the share KSM merges.",
    )
    for process in selection.own:
        who = sample.identities.get(process.pid, unknown)
        if who.guest_memory_bytes is not None:
            named = {k: v for k in labels if (v := who.get(k))}
            guest.samples.append(
                Sample(guest.name, {"pid": str(process.pid), **named}, who.guest_memory_bytes)
            )
    yield guest
    yield merging_little_family(sample, labels, explanations or {})


MERGING_LITTLE = "ksm_process_merging_little_info"


def merging_little_family(
    sample: ProcessReading, labels: tuple[str, ...], explanations: Mapping[int, Explanation]
) -> Metric:
    """One series per process with series of its own that merges little, its `reason` the
    first cause that holds (derive/causes.py's REASONS, a bounded set), as `status --why`
    names it."""
    family = GaugeMetricFamily(
        MERGING_LITTLE,
        "1 for each registered process with series of its own that merges little (fewer than "
        "1 in 20 of the pages ksmd tracks merged); reason: the first cause that holds, as "
        "ksm-exporter status --why PID explains it.",
        labels=["pid", *labels, "reason"],
    )
    unknown = ProcessIdentity()
    for process in sample.selection.own:
        explanation = explanations.get(process.pid)
        if explanation is None or explanation.reason == "merges_well":
            continue
        who = sample.identities.get(process.pid, unknown)
        named = {k: v for k in labels if (v := who.get(k))}
        family.samples.append(
            Sample(
                MERGING_LITTLE,
                {"pid": str(process.pid), **named, "reason": explanation.reason},
                1,
            )
        )
    return family


def other_metric(spec: ProcessField) -> str:
    """`ksm_process_other_<...>`: the sum of the field over the processes beyond the limit."""
    return spec.metric.replace("ksm_process_", "ksm_process_other_", 1)


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

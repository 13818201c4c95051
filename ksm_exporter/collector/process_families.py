"""Per-process KSM figures as metric families."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.samples import Sample

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

"""What `ksm-exporter tune` does on this host, from its state file (sources/tuner_state.py):
the exporter reads the file the tuner writes, and writes nothing. No file, no series."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ksm_exporter.collector.gauges import present_gauges
from ksm_exporter.sources.tuner_state import STATES, TunerRecord


def tuner_families(record: TunerRecord | None) -> Iterator[Metric]:
    if record is None:
        return
    state = GaugeMetricFamily(
        "ksm_tuner_state",
        "State of ksm-exporter tune from its state file: 1 for the current one (tuning; "
        "stopped: told to stop; overridden: stopped because someone else wrote a KSM setting; "
        "failed: a write refused), 0 for the others.",
        labels=["state"],
    )
    for name in STATES:
        state.add_metric([name], 1 if name == record.state else 0)
    yield state
    yield CounterMetricFamily(
        "ksm_tuner_changes",
        "KSM settings ksm-exporter tune has written, over its restarts (its state file).",
        value=record.changes,
    )
    yield from present_gauges(
        (
            (
                "ksm_tuner_state_updated_timestamp_seconds",
                "When ksm-exporter tune last wrote its state file (Unix time): on every "
                "change and stop, and at least every minute while it tunes.",
                record.updated_at,
            ),
            (
                "ksm_tuner_last_decision_timestamp_seconds",
                "When ksm-exporter tune last decided whether to change a setting (Unix time).",
                record.last_decision_at,
            ),
        )
    )
    change = record.last_change
    if change is not None:
        last = GaugeMetricFamily(
            "ksm_tuner_last_change_timestamp_seconds",
            "When ksm-exporter tune last wrote a KSM setting (Unix time), by setting and the "
            "rule that made the change (over_budget, new_memory, unprofitable, unmerge, "
            "way_back, probe, advice); its log gives the reason in words.",
            labels=["setting", "rule"],
        )
        last.add_metric([change.setting, change.rule], change.at)
        yield last

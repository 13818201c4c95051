"""The shipped rules in a real Prometheus that scrapes the real exporter every second.

On real KSM (a merging child, ksmd scanning fast) every recording rule must yield a value.
Where KSM settings cannot be changed, and in a second run everywhere, the exporter reads a
fixture tree instead: there no counter moves, so the rules that divide by a rate stay empty
by design.
"""

from __future__ import annotations

import contextlib

import pytest

from harness.prometheus_server import RunningPrometheus
from harness.rule_files import RULE_FILES, recording_rule_names, rules
from tests.support.monitoring_stack import JOB, monitored_exporter

# A guest name the shipped sensitive-workload selector matches.
GUEST = "sensitive-e2e"
# Rules that divide by a rate, which is 0 while a fixture tree's counters stand still, and
# the sensitive-workload selector, which no fixture process matches.
EMPTY_ON_A_FIXTURE = {
    "instance:ksm_memory_saved_bytes_per_ksmd_cpu_second:ratio_rate5m",
    "instance:ksm_full_scan_period_seconds:mean1h",
    "process:ksm_sensitive_workload:selected",
}


def without_value(prometheus: RunningPrometheus, names: set[str]) -> list[str]:
    return sorted(name for name in names if not prometheus.query(name))


@pytest.mark.parametrize(
    "fixture",
    [
        pytest.param(False, id="this-host", marks=pytest.mark.realksm),
        pytest.param(True, id="fixture-tree", marks=pytest.mark.e2e),
    ],
)
def test_rules_evaluate_in_prometheus_scraping_the_exporter(fixture: bool) -> None:
    with monitored_exporter(fixture=fixture, guest=GUEST) as stack:
        prometheus = stack.prometheus
        (target,) = prometheus.targets()
        assert (target["health"], target["labels"]) == (
            "up",
            {"job": JOB, "instance": stack.exporter.address},
        )

        loaded = prometheus.wait_for_rule_evaluation()
        assert len(loaded) == len(rules(*RULE_FILES))
        assert [(r["name"], r["health"], r.get("lastError", "")) for r in loaded] == [
            (r["name"], "ok", "") for r in loaded
        ]

        expected = set(recording_rule_names())
        if not stack.real:
            expected -= EMPTY_ON_A_FIXTURE
        # Rates need two scrapes in their window, the full-scan period a completed scan.
        with contextlib.suppress(AssertionError):
            prometheus.wait_until(lambda: not without_value(prometheus, expected), "values", 20)
        assert without_value(prometheus, expected) == []
        if not stack.real:
            assert without_value(prometheus, EMPTY_ON_A_FIXTURE) == sorted(EMPTY_ON_A_FIXTURE)

        # The job the alerts watch is the job the example config scrapes: nothing absent.
        assert prometheus.query('ALERTS{alertname="KsmExporterAbsent"}') == []
        if stack.real:
            # The merging child is the guest the shipped selector marks as sensitive.
            pending = 'ALERTS{alertname="KsmSensitiveWorkloadMerging", alertstate="pending"}'
            sensitive = prometheus.wait_until(lambda: prometheus.query(pending), pending, 10)
            assert {series["metric"]["vm"] for series in sensitive} == {GUEST}

"""The real Prometheus used by the end-to-end tests: it scrapes the exporter and stops after."""

from __future__ import annotations

import pytest

from harness.exporter_process import running_exporter
from harness.paths import FIXTURES
from harness.prometheus_server import (
    PrometheusError,
    parse_time,
    running_prometheus,
    scrape_config,
)

FIXTURE_FLAGS = (
    f"--path.sysfs={FIXTURES / 'current' / 'sys'}",
    f"--path.procfs={FIXTURES / 'current' / 'proc'}",
)


@pytest.mark.e2e
def test_scrapes_the_exporter_and_answers_queries() -> None:
    with (
        running_exporter(*FIXTURE_FLAGS) as exporter,
        running_prometheus(scrape_configs=[scrape_config("ksm", exporter.address)]) as prometheus,
    ):
        prometheus.wait_for_scrapes(2, job="ksm")
        (target,) = prometheus.targets()
        assert (target["health"], target["labels"]["job"]) == ("up", "ksm")
        assert target["labels"]["instance"] == exporter.address
        assert prometheus.value('ksm_pages_sharing{job="ksm"}') == 30000
        assert prometheus.values("ksm_advisor_mode") == {
            frozenset(
                {("__name__", "ksm_advisor_mode"), ("job", "ksm"), ("mode", mode)}
                | {("instance", exporter.address)}
            ): value
            for mode, value in (("none", 0.0), ("scan-time", 1.0))
        }
        with pytest.raises(PrometheusError, match="bad_data"):
            prometheus.query("sum(")
        directory = prometheus.directory
    assert prometheus.process.returncode is not None
    assert not directory.exists()


@pytest.mark.e2e
def test_stops_when_the_test_fails() -> None:
    with pytest.raises(RuntimeError), running_prometheus() as prometheus:
        raise RuntimeError("test failed")
    assert prometheus.process.returncode is not None


@pytest.mark.unit
def test_rfc3339_times_with_nanoseconds_and_offsets() -> None:
    assert parse_time("1970-01-01T00:00:01.5Z") == 1.5
    assert parse_time("1970-01-01T01:00:02.250000000+01:00") == 2.25
    assert parse_time("2026-11-27T00:00:00Z") == 1795737600.0

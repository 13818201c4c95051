"""The exporter on KSM scraped by a real Prometheus that loads the shipped rules.

    with monitored_exporter() as stack:
        stack.prometheus.query("instance:ksm_ksmd_cpu:ratio_rate5m")

On this machine's KSM where its settings can be changed (ksm_control's lock, a merging
child, ksmd scanning fast), else on the fixture tree "current", whose counters stand still:
`stack.real` says which.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.exporter_process import RunningExporter, running_exporter
from harness.paths import FIXTURES
from harness.prometheus_server import RunningPrometheus, running_prometheus
from harness.real_ksm import ksm_control, ksm_writable, merging_child
from harness.rule_files import EXAMPLE_CONFIG

JOB = "ksm-exporter"


@dataclass
class MonitoredExporter:
    exporter: RunningExporter
    prometheus: RunningPrometheus
    real: bool


@contextlib.contextmanager
def exporter_on_ksm(
    *flags: str, fixture: bool = False, guest: str = "ksm-test-guest"
) -> Iterator[tuple[RunningExporter, bool]]:
    """(exporter, True) on this machine's KSM with pages merging in a child that looks like
    the QEMU guest `guest`, else, or with `fixture`, (exporter, False) on a fixture tree."""
    if fixture or ksm_writable() is not None:
        tree = FIXTURES / "current"
        with running_exporter(
            f"--path.sysfs={tree / 'sys'}", f"--path.procfs={tree / 'proc'}", *flags
        ) as exporter:
            yield exporter, False
        return
    with (
        ksm_control() as ksm,
        merging_child(
            16 << 20, argv0="qemu-system-x86_64", extra_args=("-name", f"guest={guest}", "-m", "16")
        ) as child,
    ):
        ksm.set(pages_to_scan=1000, sleep_millisecs=10, run=1)
        child.wait_merged(1000)
        with running_exporter(*flags) as exporter:
            yield exporter, True


def example_config_for(
    exporter: RunningExporter,
    interval: str = "1s",
    rules: Path = EXAMPLE_CONFIG.parent,
    alertmanager: str | None = None,
) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml scraping `exporter`, with its rule files (from
    `rules`, where a test rendered them from the mixin), alerting to `alertmanager`."""
    config: dict[str, Any] = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    config["global"] = {"scrape_interval": interval, "evaluation_interval": interval}
    config["rule_files"] = [str(rules / name) for name in config["rule_files"]]
    if alertmanager is not None:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    (job,) = config["scrape_configs"]
    assert job["job_name"] == JOB
    job["static_configs"] = [{"targets": [exporter.address]}]
    return config


@contextlib.contextmanager
def monitored_exporter(
    *flags: str, scrapes: int = 5, fixture: bool = False, guest: str = "ksm-test-guest"
) -> Iterator[MonitoredExporter]:
    """The exporter (with `flags`) after Prometheus has scraped it `scrapes` times."""
    with (
        exporter_on_ksm(*flags, fixture=fixture, guest=guest) as (exporter, real),
        running_prometheus(example_config_for(exporter)) as prometheus,
    ):
        prometheus.wait_for_scrapes(scrapes, job=JOB)
        yield MonitoredExporter(exporter, prometheus, real)

"""Against the real KSM of this machine: a child's identical pages merge, the exporter agrees."""

from __future__ import annotations

import subprocess

import pytest

from ksm_exporter.collector.ksm_families import SYSFS_METRICS
from tests.support.exporter_process import running_exporter
from tests.support.exposition import parse_samples, value
from tests.support.real_ksm import ksm_control, merging_child, read_ksm
from tests.support.tools import require

pytestmark = pytest.mark.realksm


def sysfs_values() -> dict[str, int]:
    values = {}
    for metric in SYSFS_METRICS:
        try:
            values[metric.name] = read_ksm(metric.attribute)
        except (OSError, ValueError):
            continue
    return values


def test_exporter_agrees_with_sysfs_while_pages_merge() -> None:
    with ksm_control() as ksm, merging_child(32 << 20) as child, running_exporter() as exporter:
        ksm.set(pages_to_scan=1000, sleep_millisecs=10, run=1)
        child.wait_merged(4000)

        before = sysfs_values()
        text = exporter.get()
        after = sysfs_values()

        samples = parse_samples(text)
        assert value(samples, "ksm_available") == 1
        assert value(samples, "ksm_run") == 1
        compared = 0
        for metric in SYSFS_METRICS:
            if metric.name not in before:
                continue
            low, high = sorted((before[metric.name], after[metric.name]))
            exported = value(samples, metric.name) * metric.divisor
            assert low <= round(exported) <= high, metric.name
            compared += 1
        assert compared >= 8
        sharing = value(samples, "ksm_pages_sharing")
        zero = value(samples, "ksm_zero_pages")
        page = value(samples, "ksm_page_size_bytes")
        assert value(samples, "ksm_memory_saved_bytes") == (sharing + zero) * page
        assert sharing > 0
        assert value(samples, "ksm_exporter_collect_errors_total", source="sysfs") == 0

        promtool = require("promtool", "prometheus")
        check = subprocess.run(
            [promtool, "check", "metrics"],
            input=text,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert (check.returncode, check.stdout, check.stderr) == (0, "", "")

"""Every metric, recording rule, alert, flag, sysfs file, panel and link that the security
and tuning guides name really exists: a reader who looks for it finds it."""

from __future__ import annotations

import pytest

from harness.paths import REPO
from tests.support.doc_references import (
    alerts,
    broken_link,
    flags,
    panel_titles,
    recording_rules,
    references,
    sysfs_files,
)
from tests.support.metrics_doc import documented_metrics

pytestmark = pytest.mark.unit

GUIDES = ("docs/tuning.md", "docs/security.md")

SAMPLE = """
Watch `ksm_run` and `rate(ksm_full_scans_total[5m])`, the `ksm_process_*` metrics, not
`/proc/<pid>/ksm_stat`. The rule `instance:ksm_ksmd_cpu:ratio_rate5m` feeds
`KsmdExcessiveCpu`; see http://localhost:10131/metrics at 02:15. Set `pages_to_scan`
with `--collector.process.limit` or `--no-collector.process`, not `grep --count`. The
**ksmd CPU** panel; [runbook](runbook.md#ksmdexcessivecpu).

```promql
label_replace(ksm_process_merging_pages, "uid", "$1", "cgroup", ".*pod([0-9a-f]{8}).*")
```
"""


def test_the_extractors_find_each_kind_of_name_and_nothing_else() -> None:
    found = references(SAMPLE)
    assert found.metrics == {"ksm_run", "ksm_full_scans_total", "ksm_process_merging_pages"}
    assert found.metric_prefixes == {"ksm_process"}
    assert found.rules == {"instance:ksm_ksmd_cpu:ratio_rate5m"}
    assert found.alerts == {"KsmdExcessiveCpu"}
    assert found.flags == {"--collector.process.limit", "--no-collector.process"}
    assert found.sysfs_files == {"pages_to_scan"}
    assert found.panels == {"ksmd CPU"}
    assert found.links == {"runbook.md#ksmdexcessivecpu"}


def test_the_definitions_are_read_from_the_project() -> None:
    assert {"ksm_run", "ksm_memory_saved_bytes"} <= documented_metrics()
    assert {"--path.sysfs", "--log.level"} <= flags()
    assert {"pages_to_scan", "advisor_target_scan_time"} <= sysfs_files()


@pytest.fixture(params=GUIDES)
def guide(request: pytest.FixtureRequest) -> str:
    path = REPO / str(request.param)
    assert path.is_file(), f"{request.param} is missing"
    return path.read_text()


def test_every_metric_named_is_exported(guide: str) -> None:
    assert references(guide).metrics - documented_metrics() == set()


def test_every_metric_prefix_names_exported_metrics(guide: str) -> None:
    exported = documented_metrics()
    empty = {
        p for p in references(guide).metric_prefixes if not any(m.startswith(p) for m in exported)
    }
    assert empty == set()


def test_every_recording_rule_named_is_defined(guide: str) -> None:
    assert references(guide).rules - recording_rules() == set()


def test_every_alert_named_is_defined(guide: str) -> None:
    assert references(guide).alerts - alerts() == set()


def test_every_flag_named_is_accepted(guide: str) -> None:
    assert references(guide).flags - flags() == set()


def test_every_kernel_setting_named_is_a_ksm_sysfs_file(guide: str) -> None:
    assert references(guide).sysfs_files - sysfs_files() == set()


def test_every_panel_named_is_on_a_dashboard(guide: str) -> None:
    assert references(guide).panels - panel_titles() == set()


@pytest.mark.parametrize("name", GUIDES)
def test_every_relative_link_resolves(name: str) -> None:
    path = REPO / name
    broken = [
        why for target in references(path.read_text()).links if (why := broken_link(path, target))
    ]
    assert broken == []

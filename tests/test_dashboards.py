"""The dashboards: committed JSON is what the code generates, and every panel is complete."""

from __future__ import annotations

import pytest
from grafana_foundation_sdk.models.dashboard import Dashboard, RowPanel

from dashboards import fleet, host
from dashboards.generate import DASHBOARDS, render
from tests.support.dashboards import DASHBOARD_FILES, documented_metrics, load, panels, queries
from tests.support.paths import REPO

# Metrics the specification promises that the exporter does not serve yet; the end-to-end
# test skips their queries until docs/metrics.md lists them.
NOT_YET_EXPORTED = {
    "ksm_ksmd_cpu_ratio",
    "ksm_full_scan_duration_seconds",
    "ksm_ksmd_cpu_seconds_per_full_scan",
}


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_committed_json_is_what_the_code_generates(name: str) -> None:
    committed = (REPO / "dashboards" / name).read_text()
    assert committed == render(DASHBOARDS[name]()), "run: python -m dashboards.generate"


def test_uids_are_stable() -> None:
    assert load("ksm-host.json").uid == host.UID == "ksm-exporter-host"
    assert load("ksm-fleet.json").uid == fleet.UID == "ksm-exporter-fleet"


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_every_panel_has_a_query_unit_and_description(name: str) -> None:
    dashboard = load(name)
    found = panels(dashboard)
    assert len(found) >= 10
    for panel in found:
        assert panel.title, panel
        assert panel.description, panel.title
        assert len(panel.description) > 40, panel.title
        assert panel.field_config.defaults.unit, panel.title
        assert panel.targets, panel.title
        assert panel.datasource is not None
        assert (panel.datasource.type_val, panel.datasource.uid) == ("prometheus", "${datasource}")
    ids = [panel.id_val for panel in dashboard.panels or []]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    assert all(isinstance(p, RowPanel) for p in dashboard.panels or [] if p not in found)


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_every_query_filters_on_job_and_instance(name: str) -> None:
    for query in queries(name):
        assert 'job=~"$job",instance=~"$instance"' in query.expr, query.id


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_variables(name: str) -> None:
    dashboard: Dashboard = load(name)
    assert dashboard.templating is not None
    variables = {v.name: v for v in dashboard.templating.list_val or []}
    assert list(variables) == ["datasource", "job", "instance"]
    assert variables["datasource"].query == "prometheus"
    assert variables["instance"].multi is (name == "ksm-fleet.json")


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_queries_name_only_real_metrics(name: str) -> None:
    known = documented_metrics() | NOT_YET_EXPORTED | {"ALERTS"}
    for query in queries(name):
        assert query.metrics(), query.id
        assert query.metrics() <= known, (query.id, query.metrics() - known)

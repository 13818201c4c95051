"""The dashboards: committed JSON is what the code generates, and every panel is complete."""

from __future__ import annotations

import json
import re

import pytest
from grafana_foundation_sdk.models.dashboard import Dashboard, RowPanel

from dashboards import fleet, host, thresholds
from dashboards.generate import DASHBOARDS, render
from harness.dashboards import (
    DASHBOARD_FILES,
    NEEDS_KERNEL_FILE,
    RECORDING_RULE,
    TUNING_METRICS,
    description,
    load,
    panels,
    queries,
    underlying_metrics,
)
from harness.paths import REPO
from harness.rule_files import default_thresholds, recording_rule_names
from ksm_exporter.sources.kernel_history import since
from tests.support.metrics_doc import documented_metrics

pytestmark = pytest.mark.unit

THRESHOLD_RULES = {name for name in recording_rule_names() if name.startswith("instance:")} & {
    f"instance:ksm_{rule.split(':')[1]}:threshold" for rule in default_thresholds()
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
        assert panel.field_config is not None
        assert panel.field_config.defaults.unit, panel.title
        assert panel.targets, panel.title
        assert panel.datasource is not None
        assert (panel.datasource.type_val, panel.datasource.uid) == ("prometheus", "${datasource}")
    ids = [panel.id_val for panel in dashboard.panels or []]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    assert all(isinstance(p, RowPanel) for p in dashboard.panels or [] if p not in found)


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_every_query_filters_on_cluster_job_and_instance(name: str) -> None:
    for query in queries(name):
        if query.metrics() <= THRESHOLD_RULES:
            # Alert thresholds carry only the cluster and instance labels.
            assert 'cluster=~"$cluster",instance=~"$instance"' in query.expr, query.id
        else:
            assert 'cluster=~"$cluster",job=~"$job",instance=~"$instance"' in query.expr, query.id


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_variables(name: str) -> None:
    dashboard: Dashboard = load(name)
    assert dashboard.templating is not None
    variables = {v.name: v for v in dashboard.templating.list_val or []}
    assert list(variables) == ["datasource", "cluster", "job", "instance"]
    assert variables["datasource"].query == "prometheus"
    assert variables["instance"].multi is (name == "ksm-fleet.json")


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_queries_name_only_real_metrics_and_rules(name: str) -> None:
    known = documented_metrics() | set(recording_rule_names()) | {"ALERTS"}
    for query in queries(name):
        assert query.metrics(), query.id
        assert query.metrics() <= known, (query.id, query.metrics() - known)
        assert underlying_metrics(query.metrics()) <= known, query.id


def test_panel_thresholds_are_the_alerts_defaults() -> None:
    assert {rule: float(number) for rule, number in default_thresholds().items()} == (
        thresholds.ALERT_DEFAULTS
    )


def test_threshold_lines_follow_the_alerts() -> None:
    """Each panel's colour steps include the default of every alert threshold it draws."""
    for name in DASHBOARD_FILES:
        drawn: dict[str, set[str]] = {}
        for query in queries(name):
            drawn.setdefault(query.panel, set()).update(query.metrics() & THRESHOLD_RULES)
        for panel in panels(load(name)):
            assert panel.field_config is not None
            steps = panel.field_config.defaults.thresholds
            assert steps is not None
            values = {step.value for step in steps.steps}
            for rule in drawn[str(panel.title)]:
                default = thresholds.ALERT_DEFAULTS[rule.replace("instance:ksm_", "ksm:")]
                assert default in values, (name, panel.title, rule)


def test_every_alert_threshold_is_drawn_somewhere() -> None:
    drawn = {m for name in DASHBOARD_FILES for q in queries(name) for m in q.metrics()}
    per_host = {f"instance:ksm_{rule.split(':')[1]}:threshold" for rule in default_thresholds()}
    assert per_host - drawn == {"instance:ksm_scanning_cpu_ratio:threshold"}


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_panels_fit_the_grid_without_overlapping(name: str) -> None:
    taken: set[tuple[int, int]] = set()
    for panel in load(name).panels or []:
        assert panel.grid_pos is not None
        pos = panel.grid_pos
        assert pos.x >= 0, panel.title
        assert pos.x + pos.w <= 24, panel.title
        cells = {(pos.x + dx, pos.y + dy) for dx in range(pos.w) for dy in range(pos.h)}
        assert not cells & taken, f"{panel.title} overlaps another panel"
        taken |= cells


def test_panels_the_tuning_guide_names_exist() -> None:
    """docs/tuning.md names host dashboard panels in bold; renaming one must update it."""
    named = set(re.findall(r"\*\*([^*]+)\*\*", (REPO / "docs" / "tuning.md").read_text()))
    assert named
    titles = {panel.title for panel in panels(load("ksm-host.json"))}
    assert named - titles == set()


# Panel types and fields Grafana has deprecated or removed (angular panels, old table
# styles, the pre-10 row list).
DEPRECATED_PANEL_TYPES = {"graph", "singlestat", "table-old", "grafana-piechart-panel"}
DEPRECATED_KEYS = {"style", "styles", "rows", "colorBackground", "colorValue", "gauge"}


def keys_in(value: object) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for item in value.values() for k in keys_in(item)}
    if isinstance(value, list):
        return {k for item in value for k in keys_in(item)}
    return set()


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_current_schema_without_deprecated_fields_or_variable_ids(name: str) -> None:
    model = json.loads((REPO / "dashboards" / name).read_text())
    assert model["schemaVersion"] >= 39
    assert not keys_in(model) & DEPRECATED_KEYS
    assert {panel["type"] for panel in model["panels"]}.isdisjoint(DEPRECATED_PANEL_TYPES)
    assert all("id" not in variable for variable in model["templating"]["list"])
    # The SDK's own model reads it back whole.
    assert load(name).schema_version == model["schemaVersion"]


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_import_asks_for_the_data_source_and_knows_what_it_needs(name: str) -> None:
    model = json.loads((REPO / "dashboards" / name).read_text())
    (source,) = model["__inputs"]
    assert (source["type"], source["pluginId"]) == ("datasource", "prometheus")
    (variable,) = [v for v in model["templating"]["list"] if v["type"] == "datasource"]
    assert variable["current"]["value"] == "${" + source["name"] + "}"
    required = {(r["type"], r["id"]) for r in model["__requires"]}
    assert {("grafana", "grafana"), ("datasource", "prometheus")} <= required
    used = {("panel", panel["type"]) for panel in model["panels"] if panel["type"] != "row"}
    assert used == {r for r in required if r[0] == "panel"}
    # Nothing else refers to a data source by a name or uid of this installation.
    datasources = {json.dumps(p.get("datasource")) for p in model["panels"] if "datasource" in p}
    assert datasources <= {json.dumps({"type": "prometheus", "uid": "${datasource}"})}


def test_host_and_fleet_link_to_each_other() -> None:
    host_model = json.loads((REPO / "dashboards" / "ksm-host.json").read_text())
    fleet_model = json.loads((REPO / "dashboards" / "ksm-fleet.json").read_text())
    assert [link["url"] for link in host_model["links"]] == [f"/d/{fleet.UID}/"]
    assert [link["url"] for link in fleet_model["links"]] == [f"/d/{host.UID}/"]
    assert all(link["includeVars"] and link["keepTime"] for link in host_model["links"])
    # Every fleet panel that lists hosts opens the host dashboard on a click.
    per_host = [
        panel
        for panel in fleet_model["panels"]
        if any("instance" in t.get("legendFormat", "") for t in panel.get("targets", []))
        or panel["type"] == "table"
    ]
    assert len(per_host) >= 6
    for panel in per_host:
        text = json.dumps(panel["fieldConfig"])
        assert f"/d/{host.UID}/?var-instance=" in text, panel["title"]


@pytest.mark.parametrize("name", DASHBOARD_FILES)
def test_no_panel_calls_an_empty_result_good(name: str) -> None:
    for panel in panels(load(name)):
        assert not re.search(r"good: (it is )?empty", str(panel.description), re.I), panel.title


def test_settings_sit_in_one_table_below_the_savings() -> None:
    model = json.loads((REPO / "dashboards" / "ksm-host.json").read_text())
    titles = [panel["title"] for panel in model["panels"]]
    rows = [panel["title"] for panel in model["panels"] if panel["type"] == "row"]
    assert rows.index("Settings") == rows.index("Savings") + 1
    settings = model["panels"][titles.index("Settings") + 1]
    assert (settings["title"], settings["type"]) == ("KSM settings", "table")
    assert titles[titles.index("Settings") + 2] == "Pages"
    settings_metrics = {"ksm_pages_to_scan", "ksm_sleep_seconds", "ksm_max_page_sharing"}
    for metric in settings_metrics:
        users = {q.panel for q in queries("ksm-host.json") if metric in q.metrics()}
        assert "KSM settings" in users
        assert users <= {"KSM settings", "Recommended and current pages_to_scan", "Scan rate"}


def test_panels_that_need_a_newer_kernel_say_so() -> None:
    descriptions = {
        f"{name}:{panel.title}": str(panel.description)
        for name in DASHBOARD_FILES
        for panel in panels(load(name))
    }
    for query_id, kernel_file in NEEDS_KERNEL_FILE.items():
        description = descriptions[query_id.rsplit(":", 1)[0]]
        # The release comes from the kernel's history (tests/test_kernel_history.py).
        stated = f"{kernel_file}, since {since(kernel_file)}"
        assert stated in description or "NUMA kernels" in description, query_id


def test_panels_that_need_tuning_advice_say_so() -> None:
    for name in DASHBOARD_FILES:
        for query in queries(name):
            if query.metrics() & TUNING_METRICS:
                assert "full scans" in description(query), query.id


def test_without_the_rules_a_panel_names_each_rule_its_queries_read() -> None:
    """The premise of the bare-Prometheus test below, checked on every query."""
    for name in DASHBOARD_FILES:
        for query in queries(name):
            for rule in RECORDING_RULE.findall(query.expr):
                assert rule in description(query), (query.id, rule)

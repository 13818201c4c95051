"""The dashboards: committed JSON is what the code generates, and every panel is complete."""

from __future__ import annotations

import re

import pytest
from grafana_foundation_sdk.models.dashboard import Dashboard, RowPanel

from dashboards import fleet, host, thresholds
from dashboards.generate import DASHBOARDS, render
from tests.support.dashboards import (
    DASHBOARD_FILES,
    documented_metrics,
    load,
    panels,
    queries,
    underlying_metrics,
)
from tests.support.paths import REPO
from tests.support.rule_files import default_thresholds, recording_rule_names

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
        if query.metrics() <= THRESHOLD_RULES:
            # Alert thresholds carry only the instance label.
            assert 'instance=~"$instance"' in query.expr, query.id
        else:
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

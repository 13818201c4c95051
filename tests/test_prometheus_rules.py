"""deploy/prometheus/: rule files that promtool accepts and whose unit tests pass, alerts
that each fire and stay quiet in a tested history, and a runbook section per alert."""

from __future__ import annotations

import functools
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.paths import REPO, TESTS
from harness.rule_files import (
    ALERTING_RULES,
    EXAMPLE_CONFIG,
    RECORDING_RULES,
    RULE_FILES,
    alerts,
    default_thresholds,
    groups,
    recording_rule_names,
    rules,
)
from harness.tools import promtool, require
from mixin.render import evaluate

UNIT_TESTS = sorted((TESTS / "rules").glob("*.yml"))
RUNBOOK = REPO / "docs" / "runbook.md"
SEVERITIES = {"info", "warning", "critical"}
# level:metric:operations, https://prometheus.io/docs/practices/rules/
RECORDING_NAME = re.compile(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+")


def run(*command: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.e2e
def test_promtool_accepts_the_rule_files() -> None:
    result = promtool("check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_FILES)


@pytest.mark.e2e
def test_promtool_accepts_the_example_config_and_the_rules_it_loads() -> None:
    result = promtool("check", "config", str(EXAMPLE_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rule files found" in result.stdout
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    assert config["rule_files"] == [RECORDING_RULES.name, ALERTING_RULES.name]
    assert [job["job_name"] for job in config["scrape_configs"]] == ["ksm-exporter"]
    assert config["scrape_configs"][0]["static_configs"][0]["targets"] == ["localhost:10131"]


@pytest.mark.e2e
@pytest.mark.parametrize("unit_tests", UNIT_TESTS, ids=lambda path: path.name)
def test_promtool_unit_tests_pass(unit_tests: Path) -> None:
    result = promtool("test", "rules", unit_tests.name, cwd=unit_tests.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@functools.cache
def promtool_tests() -> tuple[dict[str, Any], ...]:
    """Every promtool unit test, parsed once for the tests of every alert."""
    return tuple(test for path in UNIT_TESTS for test in yaml.safe_load(path.read_text())["tests"])


def alert_cases(alertname: str) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(unit test, alert_rule_test case) for every case that checks `alertname`."""
    return [
        (test, case)
        for test in promtool_tests()
        for case in test.get("alert_rule_test", [])
        if case["alertname"] == alertname
    ]


def instances(test: dict[str, Any]) -> set[str]:
    return {
        match.group(1)
        for series in test["input_series"]
        if (match := re.search(r'instance="([^"]+)"', series["series"]))
    }


@pytest.mark.unit
@pytest.mark.parametrize("alert", [a["alert"] for a in alerts()])
def test_every_alert_fires_and_has_a_near_miss_in_the_unit_tests(alert: str) -> None:
    cases = alert_cases(alert)
    firing = [(test, case) for test, case in cases if case["exp_alerts"]]
    assert firing, f"no unit test where {alert} fires"
    for _test, case in firing:
        for expected in case["exp_alerts"]:
            assert expected["exp_annotations"].keys() == {"summary", "description", "runbook_url"}
    # A near miss: a time at which it must not fire yet, and a host in the same history
    # (or a history of its own) for which it must not fire at all.
    assert any(not case["exp_alerts"] for _test, case in cases), alert
    assert any(
        not case["exp_alerts"]
        or instances(test) - {e["exp_labels"].get("instance") for e in case["exp_alerts"]}
        for test, case in firing
    ), alert


@pytest.mark.unit
def test_the_specified_alerts_exist() -> None:
    assert {a["alert"] for a in alerts()} >= {
        "KsmdExcessiveCpu",
        "KsmScanningWithoutSavings",
        "KsmNegativeProfit",
        "KsmHighUnsharedRatio",
        "KsmFullScanTooSlow",
        "KsmExporterCollectErrors",
        "KsmExporterAbsent",
        "KsmFullScanStalled",
        "KsmExporterProcessesUnreadable",
        "KsmSensitiveWorkloadMerging",
        "KsmSensitiveWorkloadRegistered",
        "KsmTuningAdvice",
    }


@pytest.mark.unit
def test_every_alert_has_one_rule_and_static_summary() -> None:
    names = [a["alert"] for a in alerts()]
    assert len(names) == len(set(names))
    for alert in alerts():
        assert "{{" not in alert["annotations"]["summary"], alert["alert"]
        assert "$labels.instance" in alert["annotations"]["description"], alert["alert"]


def github_anchor(heading: str) -> str:
    """The fragment GitHub gives a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def runbook_anchors() -> set[str]:
    return {
        github_anchor(line.lstrip("#"))
        for line in RUNBOOK.read_text().splitlines()
        if line.startswith("#")
    }


@pytest.mark.unit
@pytest.mark.parametrize("alert", alerts(), ids=lambda rule: str(rule["alert"]))
def test_every_alert_has_severity_summary_description_and_a_runbook_section(
    alert: dict[str, Any],
) -> None:
    assert alert["labels"]["severity"] in SEVERITIES
    annotations = alert["annotations"]
    assert annotations["summary"].strip()
    assert "{{ $value" in annotations["description"] or alert["alert"] == "KsmExporterAbsent"
    pattern = evaluate("mixin._config")["runbookURLPattern"]
    assert pattern.startswith("https://")
    assert annotations["runbook_url"] == pattern % alert["alert"].lower()
    anchor = annotations["runbook_url"].rpartition("#")[2]
    assert anchor in runbook_anchors()
    assert "for" in alert


@pytest.mark.unit
def test_runbook_links_within_the_page_resolve() -> None:
    links = set(re.findall(r"\]\(#([^)]+)\)", RUNBOOK.read_text()))
    assert links
    assert links <= runbook_anchors()


@pytest.mark.unit
def test_recording_rules_follow_the_naming_convention() -> None:
    names = recording_rule_names()
    assert names
    for name in names:
        assert RECORDING_NAME.fullmatch(name), name
    assert {
        "instance:ksm_ksmd_cpu:ratio_rate5m",
        "instance:ksm_memory_saved_bytes_per_ksmd_cpu_second:ratio_rate5m",
        "instance:ksm_full_scan_period_seconds:mean1h",
        "instance:ksm_pages_scanned:rate5m",
    } <= set(names)


@pytest.mark.unit
def test_every_threshold_has_a_per_host_rule_an_alert_and_a_runbook_row() -> None:
    defaults = default_thresholds()
    assert len(defaults) == 5
    all_rules = rules()
    runbook = RUNBOOK.read_text()
    for name, number in defaults.items():
        figure = name.split(":")[1]
        per_host = f"instance:ksm_{figure}:threshold"
        (rule,) = [r for r in all_rules if r.get("record") == per_host]
        assert f'{name}{{instance!=""}}' in rule["expr"]
        assert f'{name}{{instance=""}}' in rule["expr"]
        assert any(per_host in a["expr"] for a in alerts()), per_host
        assert f"| `{name}` | `{number}`" in runbook, name


@pytest.mark.unit
def test_alert_groups_are_uniquely_named() -> None:
    names = [g["name"] for path in RULE_FILES for g in groups(path)]
    assert len(names) == len(set(names))


@pytest.mark.e2e
def test_yamllint_passes_on_every_yaml_file() -> None:
    yamllint = require("yamllint", "yamllint")
    result = run(yamllint, "--strict", ".")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")

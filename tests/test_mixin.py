"""mixin/: the one source of the rules. Its rendered output is what is checked in, it is
jsonnetfmt-clean, and its _config reaches every rule it names."""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import _jsonnet
import pytest
import yaml

from mixin.render import REPO, evaluate, outputs, rule_files, rule_groups
from tests.support.tools import promtool, require

MIXIN = REPO / "mixin"


def expressions(config: dict[str, Any] | None = None) -> list[str]:
    rules, alerts = rule_groups(config)
    return [rule["expr"] for group in rules["groups"] + alerts["groups"] for rule in group["rules"]]


# Rendering everything takes a second or more: once, for every file's test.
RENDERED = outputs()


@pytest.mark.unit
@pytest.mark.parametrize("path", sorted(RENDERED), ids=lambda path: path.name)
def test_checked_in_files_are_what_the_mixin_renders(path: Path) -> None:
    assert path.read_text() == RENDERED[path], "run: .venv/bin/python -m mixin.render"


@pytest.mark.unit
def test_the_mixin_has_the_conventional_fields() -> None:
    fields = evaluate(
        "{ config: std.objectFieldsAll(mixin._config),"
        " rules: std.objectFields(mixin.prometheusRules),"
        " alerts: std.objectFields(mixin.prometheusAlerts),"
        " dashboards: std.objectFields(mixin.grafanaDashboards) }"
    )
    assert {"selector", "clusterLabel", "runbookURLPattern", "thresholds"} <= set(fields["config"])
    assert fields["rules"] == fields["alerts"] == ["groups"]
    assert fields["dashboards"] == ["ksm-fleet.json", "ksm-host.json"]


@pytest.mark.unit
def test_the_selector_and_cluster_label_reach_every_rule() -> None:
    shipped = expressions()
    # Defaults are constants; the sensitive-workload selection is joined on the selected
    # series by the alerts that read it.
    reading = [e for e in shipped if not e.startswith(("vector(", "group without () ("))]
    assert len(reading) == len(shipped) - 6
    assert all('job="ksm-exporter"' in expr for expr in reading)
    changed = expressions({"selector": 'job="ksm", team="virt"', "clusterLabel": "k8s_cluster"})
    assert not any("ksm-exporter" in expr for expr in changed)
    assert not any(re.search(r"\bcluster\b", expr) for expr in changed)
    assert sum('job="ksm", team="virt"' in expr for expr in changed) == sum(
        'job="ksm-exporter"' in expr for expr in shipped
    )
    joins = [expr for expr in changed if "on (" in expr or "by (" in expr]
    assert joins
    assert all("k8s_cluster" in expr for expr in joins)


def join_records(config: dict[str, Any]) -> list[str]:
    rules, _alerts = rule_groups(config)
    return [
        rule["record"]
        for group in rules["groups"]
        if group["name"] == "ksm-platform-joins"
        for rule in group["rules"]
    ]


@pytest.mark.unit
def test_platform_joins_are_off_by_default_and_each_turns_on_alone() -> None:
    assert join_records({}) == []
    records = {
        "pve": "pve_guest:ksm_guest_memory_merged:ratio",
        "kubevirt": "kubevirt_vmi:ksm_guest_memory_merged:ratio",
        "libvirt": "libvirt_domain:ksm_guest_memory_merged:ratio",
    }
    for platform, record in records.items():
        on = {"platformJoins": {platform: {"enabled": True}}}
        assert join_records(on) == [record]
        changed = {**on, "selector": 'job="ksm"', "clusterLabel": "k8s_cluster"}
        rules, _alerts = rule_groups(changed)
        (join,) = [g for g in rules["groups"] if g["name"] == "ksm-platform-joins"]
        assert 'job="ksm"' in join["rules"][0]["expr"]
        assert "on (k8s_cluster, " in join["rules"][0]["expr"]


@pytest.mark.unit
def test_runbook_urls_follow_the_pattern() -> None:
    pattern = "https://runbooks.example/ksm/%s.html"
    _rules, alerts = rule_groups({"runbookURLPattern": pattern})
    urls = {
        rule["alert"]: rule["annotations"]["runbook_url"]
        for group in alerts["groups"]
        for rule in group["rules"]
    }
    assert urls
    assert all(url == pattern % name.lower() for name, url in urls.items())


@pytest.mark.e2e
def test_thresholds_and_overrides_from_the_config_apply(tmp_path: Path) -> None:
    config = {
        "thresholds": {"ksmd_cpu_ratio": 0.4},
        "thresholdOverrides": [
            {"threshold": "ksmd_cpu_ratio", "value": 0.6, "labels": {"instance": "b:10131"}}
        ],
    }
    for name, text in rule_files(config).items():
        (tmp_path / name).write_text(text)
    cpu = {"values": "0+30x30"}
    threshold = "instance:ksm_ksmd_cpu_ratio:threshold"
    test = {
        "rule_files": ["ksm-rules.yml", "ksm-alerts.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": f'ksm_available{{job="ksm-exporter", instance="{host}"}}', **cpu}
                    for host in ("a:10131", "b:10131")
                ]
                + [
                    {"series": f'ksm_ksmd_cpu_seconds_total{{job="ksm-exporter", instance="{h}"}}'}
                    | cpu
                    for h in ("a:10131", "b:10131")
                ],
                "promql_expr_test": [
                    {
                        "expr": threshold,
                        "eval_time": "10m",
                        "exp_samples": [
                            {
                                "labels": f'{threshold}{{instance="a:10131"}}',
                                "value": 0.4,
                            },
                            {
                                "labels": f'{threshold}{{instance="b:10131"}}',
                                "value": 0.6,
                            },
                        ],
                    }
                ],
            }
        ],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test))
    result = promtool("test", "rules", "test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.e2e
def test_the_libvirt_join_follows_an_exporter_that_names_the_uuid_instance_id(
    tmp_path: Path,
) -> None:
    """inovex's prometheus-libvirt-exporter (pkg/exporter/prometheus-libvirt-exporter.go)
    puts the domain UUID in libvirt_domain_openstack_info's instance_id, not in a `uuid` of
    libvirt_domain_info_meta as Tinkoff's libvirt-exporter does: _config names its series
    and key, and the join follows."""
    inovex = {
        "enabled": True,
        "info": "libvirt_domain_openstack_info",
        "key": "instance_id",
        "on": ["instance_id"],
        "labels": ["domain", "instance_name", "project_name"],
    }
    for name, text in rule_files({"platformJoins": {"libvirt": inovex}}).items():
        (tmp_path / name).write_text(text)
    uuid = "414426ac-2b9c-4cd5-8a3e-2a7c6c1b0e11"
    guest = (
        f'job="ksm-exporter", instance="hv:10131", pid="12", vm="instance-00000001",'
        f' vm_uuid="{uuid}"'
    )
    info = (
        f'job="libvirt", instance="hv:9000", domain="instance-00000001",'
        f' instance_name="web-prod", instance_id="{uuid}", flavor_name="m1.small",'
        ' user_name="alice", user_id="u1", project_name="shop", project_id="p1"'
    )
    record = "libvirt_domain:ksm_guest_memory_merged:ratio"
    test = {
        "rule_files": ["ksm-rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": 'ksm_page_size_bytes{job="ksm-exporter", instance="hv:10131"}',
                        "values": "4096x5",
                    },
                    # 65536 pages of 4 KiB merged of a 2 GiB guest: an eighth.
                    {"series": f"ksm_process_merging_pages{{{guest}}}", "values": "65536x5"},
                    {
                        "series": f"ksm_process_guest_memory_bytes{{{guest}}}",
                        "values": "2147483648x5",
                    },
                    {"series": f"libvirt_domain_openstack_info{{{info}}}", "values": "1x5"},
                ],
                "promql_expr_test": [
                    {
                        "expr": record,
                        "eval_time": "4m",
                        "exp_samples": [
                            {
                                "labels": f'{record}{{{guest}, instance_id="{uuid}",'
                                ' domain="instance-00000001", instance_name="web-prod",'
                                ' project_name="shop"}',
                                "value": 65536 * 4096 / 2**31,
                            }
                        ],
                    }
                ],
            }
        ],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test))
    result = promtool("test", "rules", "test.yml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.e2e
def test_the_mixin_is_jsonnetfmt_clean() -> None:
    jsonnetfmt = require("jsonnetfmt", "jsonnet")
    files = sorted(MIXIN.glob("*.libsonnet"))
    assert len(files) >= 4
    result = subprocess.run(
        [jsonnetfmt, "--test", *map(str, files)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr or f"run: jsonnetfmt -i {MIXIN}/*.libsonnet"


@pytest.mark.e2e
def test_debian_jsonnet_renders_the_same_rules() -> None:
    """Users render the mixin with any jsonnet; the C++ one packaged by Debian agrees."""
    jsonnet = require("jsonnet", "jsonnet")
    result = subprocess.run(
        [
            jsonnet,
            "-e",
            "local m = import 'mixin.libsonnet'; [m.prometheusRules, m.prometheusAlerts]",
        ],
        cwd=MIXIN,
        capture_output=True,
        text=True,
        check=True,
    )
    assert tuple(json.loads(result.stdout)) == rule_groups()


@pytest.mark.unit
def test_the_readme_example_renders_rules_for_its_own_job() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Rules, alerts and dashboards: two ways in") :]
    (example,) = re.findall(r"```jsonnet\n(.*?)```", section[: section.index("\n## ")], re.S)
    files = json.loads(
        _jsonnet.evaluate_snippet("rules.jsonnet", textwrap.dedent(example), jpathdir=[str(REPO)])
    )
    assert set(files) == {"ksm-rules.yml", "ksm-alerts.yml"}
    rules = yaml.safe_load(files["ksm-rules.yml"])
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert any('job="ksm"' in expr for expr in exprs)
    assert "vector(0.4)" in exprs
    alerts = yaml.safe_load(files["ksm-alerts.yml"])
    assert len([r for g in alerts["groups"] for r in g["rules"]]) == len(
        [r for g in rule_groups()[1]["groups"] for r in g["rules"]]
    )
    dashboards = evaluate("mixin.grafanaDashboards")
    assert dashboards["ksm-host.json"]["uid"] == "ksm-exporter-host"
    assert dashboards["ksm-fleet.json"] == json.loads(
        (REPO / "dashboards/ksm-fleet.json").read_text()
    )

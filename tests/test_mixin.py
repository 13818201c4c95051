"""mixin/: the one source of the rules. Its rendered output is what is checked in, it is
jsonnetfmt-clean, and its _config reaches every rule it names."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness import rule_files as checked_in
from harness.tools import promtool, require
from mixin.render import REPO, evaluate, outputs, rule_files, rule_groups

MIXIN = REPO / "mixin"


# A whole render takes a second or more, most of it formatting the alerts' descriptions.
# jsonnet is lazy: a test that picks out the fields it checks in jsonnet leaves the rest
# unrendered, and pays a tenth of that.


def expressions(config: dict[str, Any] | None = None) -> list[str]:
    """Every rule's expression, recording rules first, in file order: the shipped ones from
    the whole render the checked-in files are compared with (kept for the run), another
    configuration's alone."""
    if config is None:
        rules, alerts = rule_groups()
        return [r["expr"] for group in rules["groups"] + alerts["groups"] for r in group["rules"]]
    exprs: list[str] = evaluate(
        "[rule.expr for group in mixin.prometheusRules.groups + mixin.prometheusAlerts.groups"
        " for rule in group.rules]",
        config,
    )
    return exprs


@pytest.fixture(scope="session")
def rendered() -> dict[Path, str]:
    return outputs()


@pytest.mark.unit
def test_checked_in_files_are_what_the_mixin_renders(rendered: dict[Path, str]) -> None:
    assert len(rendered) >= 5
    stale = [
        str(path.relative_to(REPO)) for path, text in rendered.items() if path.read_text() != text
    ]
    assert not stale, "run: .venv/bin/python -m mixin.render"


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


@pytest.mark.unit
def test_platform_joins_are_off_by_default_and_each_turns_on_alone() -> None:
    records = {
        "pve": "pve_guest:ksm_guest_memory_merged:ratio",
        "kubevirt": "kubevirt_vmi:ksm_guest_memory_merged:ratio",
        "libvirt": "libvirt_domain:ksm_guest_memory_merged:ratio",
    }
    # One evaluation: the shipped mixin, and each platform turned on as _config documents it.
    joins = evaluate(
        "local joins(m) = [rule for group in m.prometheusRules.groups"
        " if group.name == 'ksm-platform-joins' for rule in group.rules];"
        " { shipped: joins(mixin) } + { [platform]: joins(mixin + { _config+:: {"
        " platformJoins+: { [platform]+: { enabled: true } },"
        " selector: 'job=\"ksm\"', clusterLabel: 'k8s_cluster' } })"
        " for platform in ['pve', 'kubevirt', 'libvirt'] }"
    )
    assert joins.pop("shipped") == []
    assert joins.keys() == records.keys()
    for platform, record in records.items():
        (join,) = joins[platform]
        assert join["record"] == record
        assert 'job="ksm"' in join["expr"]
        assert "on (k8s_cluster, " in join["expr"]


@pytest.mark.unit
def test_runbook_urls_follow_the_pattern() -> None:
    pattern = "https://runbooks.example/ksm/%s.html"
    urls = evaluate(
        "{ [rule.alert]: rule.annotations.runbook_url"
        " for group in mixin.prometheusAlerts.groups for rule in group.rules }",
        {"runbookURLPattern": pattern},
    )
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


@pytest.mark.e2e
def test_the_readme_example_renders_rules_for_its_own_job(tmp_path: Path) -> None:
    """The README's rules.jsonnet and its two jsonnet commands, run as a user would in a
    directory where the repository is vendored."""
    jsonnet = require("jsonnet", "jsonnet")
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Rules, alerts and dashboards: two ways in") :]
    section = section[: section.index("\n## ")]
    (example,) = re.findall(r"```jsonnet\n(.*?)```", section, re.S)
    commands = [shlex.split(command) for command in re.findall(r"`(jsonnet [^`]+)`", section)]
    assert len(commands) == 2
    (tmp_path / "rules.jsonnet").write_text(textwrap.dedent(example))
    for vendored in ("mixin", "dashboards"):
        shutil.copytree(REPO / vendored, tmp_path / vendored)
    (tmp_path / "out").mkdir()
    for command in commands:
        result = subprocess.run(
            [jsonnet, *command[1:]], cwd=tmp_path, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    rules = yaml.safe_load((out / "ksm-rules.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert any('job="ksm"' in expr for expr in exprs)
    assert "vector(0.4)" in exprs
    alerts = yaml.safe_load((out / "ksm-alerts.yml").read_text())
    assert [r["alert"] for g in alerts["groups"] for r in g["rules"]] == [
        alert["alert"] for alert in checked_in.alerts()
    ]
    for name in ("ksm-host.json", "ksm-fleet.json"):
        assert json.loads((out / name).read_text()) == json.loads(
            (REPO / "dashboards" / name).read_text()
        )

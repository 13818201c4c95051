"""deploy/docker-compose.yml: the exporter, Prometheus with the rules, Grafana with the
dashboards. No Docker engine runs the tests, so the file's structure is checked instead:
services, mounts that exist in the repository, capabilities, ports, and configurations that
Prometheus' promtool and the Grafana provisioning they feed accept."""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from tests.support.paths import REPO
from tests.support.tools import promtool

DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"
PROVISIONING = DEPLOY / "grafana" / "provisioning"


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def service(name: str) -> dict[str, Any]:
    found: dict[str, Any] = compose()["services"][name]
    return found


def bind_mounts(name: str) -> dict[str, tuple[Path, str]]:
    """{container path: (host path, mode)} of a service's bind mounts (not named volumes)."""
    mounts = {}
    for entry in service(name).get("volumes", []):
        source, target, *mode = entry.split(":")
        if source.startswith(("/", ".")):
            host_path = Path(source) if source.startswith("/") else (DEPLOY / source).resolve()
            mounts[target] = (host_path, mode[0] if mode else "rw")
    return mounts


def repository_mounts(name: str) -> dict[str, Path]:
    return {
        target: path
        for target, (path, _mode) in bind_mounts(name).items()
        if path.is_relative_to(REPO)
    }


def test_services() -> None:
    document = compose()
    assert set(document["services"]) == {"ksm-exporter", "prometheus", "grafana"}
    assert set(document["volumes"]) == {"prometheus-data", "grafana-data"}
    assert service("prometheus")["depends_on"] == ["ksm-exporter"]
    assert service("grafana")["depends_on"] == ["prometheus"]


def test_the_exporter_is_built_from_the_repository_and_reads_the_host_read_only() -> None:
    exporter = service("ksm-exporter")
    assert (DEPLOY / exporter["build"]).resolve() == REPO
    assert (REPO / "Dockerfile").is_file()
    assert bind_mounts("ksm-exporter") == {
        "/host/proc": (Path("/proc"), "ro"),
        "/host/sys": (Path("/sys"), "ro"),
    }
    assert exporter["command"] == ["--path.procfs=/host/proc", "--path.sysfs=/host/sys"]
    assert exporter["cap_drop"] == ["ALL"]
    assert exporter["cap_add"] == ["DAC_READ_SEARCH"]
    assert exporter["read_only"] is True
    assert exporter["pid"] == "host"
    assert exporter["ports"] == ["10131:10131"]
    assert "EXPOSE 10131" in (REPO / "Dockerfile").read_text()


@pytest.mark.parametrize("name", ["prometheus", "grafana"])
def test_every_repository_mount_exists_and_is_read_only(name: str) -> None:
    mounts = bind_mounts(name)
    assert mounts
    for target, (path, mode) in mounts.items():
        assert path.exists(), f"{name}: {path} (mounted at {target}) is missing"
        assert mode == "ro", target


def test_web_uis_listen_on_localhost_only() -> None:
    assert service("prometheus")["ports"] == ["127.0.0.1:9090:9090"]
    assert service("grafana")["ports"] == ["127.0.0.1:3000:3000"]


def container_tree(name: str, root: Path) -> Path:
    """The service's repository mounts copied under `root` at their container paths."""
    for target, path in repository_mounts(name).items():
        destination = root / PurePosixPath(target).relative_to("/")
        if path.is_dir():
            shutil.copytree(path, destination)
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, destination)
    return root


def test_prometheus_loads_the_rules_and_scrapes_the_exporter(tmp_path: Path) -> None:
    root = container_tree("prometheus", tmp_path)
    config_path = root / "etc" / "prometheus" / "prometheus.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in service("prometheus")["command"]
    check = promtool("check", "config", str(config_path))
    assert check.returncode == 0, check.stdout + check.stderr
    for name in ("ksm-rules.yml", "ksm-alerts.yml"):
        assert f"Checking {root / 'etc' / 'prometheus' / name}\n" in check.stdout
    config = yaml.safe_load(config_path.read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "ksm-exporter"
    assert job["static_configs"] == [{"targets": ["ksm-exporter:10131"]}]
    rules = {Path(p).name for p in config["rule_files"]}
    assert rules == {"ksm-rules.yml", "ksm-alerts.yml"}
    mounted = repository_mounts("prometheus")
    for name in rules:
        assert mounted[f"/etc/prometheus/{name}"] == DEPLOY / "prometheus" / name


def test_grafana_gets_the_datasource_and_both_dashboards() -> None:
    mounted = repository_mounts("grafana")
    assert mounted["/etc/grafana/provisioning"] == PROVISIONING
    (datasource,) = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    assert "9090:9090" in service("prometheus")["ports"][0]
    (provider,) = yaml.safe_load((PROVISIONING / "dashboards" / "ksm.yml").read_text())["providers"]
    folder = PurePosixPath(provider["options"]["path"])
    dashboards = {
        PurePosixPath(target).name: path
        for target, path in mounted.items()
        if PurePosixPath(target).parent == folder
    }
    assert dashboards == {
        "ksm-host.json": REPO / "dashboards" / "ksm-host.json",
        "ksm-fleet.json": REPO / "dashboards" / "ksm-fleet.json",
    }
    home = service("grafana")["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert PurePosixPath(home).parent == folder
    assert PurePosixPath(home).name in dashboards

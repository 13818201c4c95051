"""deploy/docker-compose.yml: the exporter, Prometheus with the rules, Grafana with the
dashboards. No Docker engine runs the tests, so what the file sets is checked against what
the exporter, Prometheus (promtool), the rules and the dashboards need: the one capability
and nothing that disables it, host files read-only where the exporter's flags look,
nothing published beyond this host, the job the rules select, a Grafana new enough for the
dashboards, and mounts that exist."""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from packaging.version import Version

from dashboards.generate import GRAFANA_VERSION
from harness.paths import REPO
from harness.tools import promtool
from ksm_exporter.cli import build_parser, load_settings
from ksm_exporter.config import DEFAULT_PORT, ListenAddress
from mixin.render import evaluate

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


@pytest.mark.unit
def test_services_start_in_order() -> None:
    document = compose()
    assert set(document["services"]) == {"ksm-exporter", "prometheus", "grafana"}
    assert service("prometheus")["depends_on"] == ["ksm-exporter"]
    assert service("grafana")["depends_on"] == ["prometheus"]


@pytest.mark.unit
def test_the_exporter_keeps_the_one_capability_it_needs_and_no_other() -> None:
    exporter = service("ksm-exporter")
    assert exporter["cap_drop"] == ["ALL"]
    assert exporter["cap_add"] == ["DAC_READ_SEARCH"]
    # The capability reaches the unprivileged user as a file capability of the image's
    # interpreter; no-new-privileges would silently turn it off.
    options = [str(option).replace("=", ":") for option in exporter.get("security_opt", [])]
    assert not any(
        option.startswith("no-new-privileges") and not option.endswith(":false")
        for option in options
    )
    assert "USER 65534:65534" in (REPO / "Dockerfile").read_text()
    assert not exporter.get("privileged", False)
    assert "user" not in exporter  # the image's unprivileged user


@pytest.mark.unit
def test_the_exporter_reads_the_hosts_files_read_only_where_its_flags_look() -> None:
    exporter = service("ksm-exporter")
    assert (DEPLOY / exporter["build"]).resolve() == REPO
    settings = load_settings(build_parser().parse_args(exporter["command"]))
    mounts = bind_mounts("ksm-exporter")
    assert mounts[settings.path_procfs] == (Path("/proc"), "ro")
    assert mounts[settings.path_sysfs] == (Path("/sys"), "ro")
    assert set(mounts) == {settings.path_procfs, settings.path_sysfs}
    assert exporter["read_only"] is True
    # The host's /proc already shows every process; the host's pid and network namespaces
    # would only add its signals and sockets.
    assert exporter.get("pid") != "host"
    assert exporter.get("network_mode") != "host"


@pytest.mark.unit
@pytest.mark.parametrize("name", ["ksm-exporter", "prometheus", "grafana"])
def test_nothing_is_published_beyond_this_host(name: str) -> None:
    for port in service(name)["ports"]:
        assert str(port).startswith("127.0.0.1:"), (name, port)


@pytest.mark.unit
def test_the_exporter_is_published_on_the_port_it_listens_on() -> None:
    exporter = service("ksm-exporter")
    settings = load_settings(build_parser().parse_args(exporter["command"]))
    port = ListenAddress.split(settings.web_listen_address)[1]
    assert port == DEFAULT_PORT
    assert exporter["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert f"EXPOSE {port}" in (REPO / "Dockerfile").read_text()


@pytest.mark.unit
@pytest.mark.parametrize("name", ["prometheus", "grafana"])
def test_every_repository_mount_exists_and_is_read_only(name: str) -> None:
    mounts = bind_mounts(name)
    assert mounts
    for target, (path, mode) in mounts.items():
        assert path.exists(), f"{name}: {path} (mounted at {target}) is missing"
        assert mode == "ro", target


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


@pytest.mark.e2e
def test_prometheus_loads_the_rules_and_scrapes_the_job_they_select(tmp_path: Path) -> None:
    root = container_tree("prometheus", tmp_path)
    config_path = root / "etc" / "prometheus" / "prometheus.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in service("prometheus")["command"]
    check = promtool("check", "config", str(config_path))
    assert check.returncode == 0, check.stdout + check.stderr
    for name in ("ksm-rules.yml", "ksm-alerts.yml"):
        assert f"Checking {root / 'etc' / 'prometheus' / name}\n" in check.stdout
    config = yaml.safe_load(config_path.read_text())
    (job,) = config["scrape_configs"]
    # The rules select the job by the mixin's selector.
    assert evaluate("mixin._config")["selector"] == f'job="{job["job_name"]}"'
    exporter_port = service("ksm-exporter")["ports"][0].rsplit(":", 1)[1]
    assert job["static_configs"] == [{"targets": [f"ksm-exporter:{exporter_port}"]}]
    mounted = repository_mounts("prometheus")
    for name in ("ksm-rules.yml", "ksm-alerts.yml"):
        assert mounted[f"/etc/prometheus/{name}"] == DEPLOY / "prometheus" / name


@pytest.mark.unit
def test_grafana_is_new_enough_for_the_dashboards_it_gets() -> None:
    image, _, tag = service("grafana")["image"].partition(":")
    assert image == "grafana/grafana-oss"
    assert Version(tag) >= Version(GRAFANA_VERSION)
    mounted = repository_mounts("grafana")
    assert mounted["/etc/grafana/provisioning"] == PROVISIONING
    (datasource,) = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
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

"""The release workflow: valid against the GitHub workflow schema that check-jsonschema
ships, and it publishes what the manifests and the package name say, only after the tests
passed on a version tag."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.paths import REPO

WORKFLOW = REPO / ".github" / "workflows" / "release.yml"


def check_jsonschema(path: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema from the dev extras, with its vendored GitHub workflow schema."""
    binary = Path(sys.executable).parent / "check-jsonschema"
    return subprocess.run(
        [str(binary), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def workflow() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())
    return document


def steps(job: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = workflow()["jobs"][job]["steps"]
    return found


def uses(job: str, action: str) -> dict[str, Any]:
    (step,) = [s for s in steps(job) if s.get("uses", "").startswith(action + "@")]
    return step


@pytest.mark.e2e
def test_the_workflow_passes_the_github_workflow_schema() -> None:
    result = check_jsonschema(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.e2e
def test_the_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = workflow()
    del broken["jobs"]["image"]["runs-on"]
    path = tmp_path / "release.yml"
    path.write_text(yaml.safe_dump(broken))
    result = check_jsonschema(path)
    assert result.returncode == 1
    assert "runs-on" in result.stdout


@pytest.mark.unit
def test_it_runs_on_version_tags_only_and_publishes_after_the_tests() -> None:
    assert workflow()["on"] == {"push": {"tags": ["v*.*.*"]}}
    jobs = workflow()["jobs"]
    assert any(".ci/run" in step.get("run", "") for step in jobs["test"]["steps"])
    assert jobs["image"]["needs"] == jobs["python-package"]["needs"] == "test"
    # Least privilege: read-only by default, writes only where a job publishes.
    assert workflow()["permissions"] == {"contents": "read"}
    assert jobs["image"]["permissions"]["packages"] == "write"
    assert jobs["python-package"]["permissions"]["id-token"] == "write"


@pytest.mark.unit
def test_the_image_is_multi_arch_under_the_name_the_manifests_use() -> None:
    kustomization = yaml.safe_load((REPO / "deploy/kubernetes/base/kustomization.yaml").read_text())
    (image,) = kustomization["images"]
    assert workflow()["env"]["IMAGE"] == image["newName"]
    build = uses("image", "docker/build-push-action")["with"]
    assert set(build["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    assert build["push"] is True
    assert uses("image", "docker/setup-qemu-action")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    # The manifests pin the version the package has, which the tag must name.
    assert image["newTag"] == project["version"]


@pytest.mark.unit
def test_the_python_package_is_built_and_published() -> None:
    assert any("python -m build" in step.get("run", "") for step in steps("python-package"))
    assert uses("python-package", "pypa/gh-action-pypi-publish")

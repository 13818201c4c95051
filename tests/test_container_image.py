"""The Dockerfile: lint-clean, unprivileged, and only the exporter goes into it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from harness.paths import REPO
from harness.tools import require
from ksm_exporter.privileges import file_capability, grant_to_file

DOCKERFILE = REPO / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"


def final_stage() -> str:
    return DOCKERFILE.read_text().rsplit("\nFROM ", 1)[1]


@pytest.mark.e2e
def test_hadolint_has_nothing_to_say() -> None:
    result = subprocess.run(
        [
            str(HADOLINT),
            "--disable-ignore-pragma",
            "--failure-threshold=style",
            "--require-label=org.opencontainers.image.title:text",
            "--require-label=org.opencontainers.image.licenses:spdx",
            "--require-label=org.opencontainers.image.version:text",
            str(DOCKERFILE),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


@pytest.mark.e2e
def test_hadolint_would_complain() -> None:
    """The check above can fail: the same linter on a careless Dockerfile."""
    careless = "FROM python\nRUN apt-get install curl\nCMD ksm-exporter\n"
    result = subprocess.run(
        [str(HADOLINT), "-"],
        input=careless,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert {"DL3006", "DL3008", "DL3025"} <= set(re.findall(r"DL\d{4}", result.stdout))


@pytest.mark.unit
def test_runs_as_a_numeric_unprivileged_user() -> None:
    stage = final_stage()
    users = re.findall(r"^USER (\S+)$", stage, re.MULTILINE)
    assert users == ["65534:65534"]
    assert re.search(r'^ENTRYPOINT \["ksm-exporter"\]$', stage, re.MULTILINE)
    # Nothing from the build stage but the virtual environment.
    assert re.findall(r"^COPY .*$", stage, re.MULTILINE) == [
        "COPY --from=build /opt/ksm-exporter /opt/ksm-exporter"
    ]


def allowed_in_context() -> set[str]:
    """What .dockerignore lets into the build context: it ignores everything, then allows."""
    lines = (REPO / ".dockerignore").read_text().splitlines()
    patterns = [line for line in lines if line and line[0] != "#"]
    assert patterns[0] == "*"
    return {p[1:].rstrip("/") for p in patterns if p.startswith("!")}


@pytest.mark.unit
def test_build_context_holds_only_what_the_image_needs() -> None:
    assert allowed_in_context() == {"pyproject.toml", "README.md", "ksm_exporter"}


@pytest.mark.e2e
def test_file_capability_is_dac_read_search_permitted_only(tmp_path: Path) -> None:
    """What the image does to its interpreter, read back by libcap's getcap."""
    # getcap lives in /usr/sbin, which not every user's PATH holds.
    getcap = shutil.which("getcap") or shutil.which("getcap", path="/usr/sbin:/sbin")
    getcap = getcap or require("getcap", "libcap2-bin")
    target = tmp_path / "python3"
    shutil.copy(os.path.realpath(sys.executable), target)
    grant_to_file(str(target))
    assert os.getxattr(target, "security.capability") == file_capability()
    shown = subprocess.run([getcap, str(target)], capture_output=True, text=True, check=True)
    assert shown.stdout.split() == [str(target), "cap_dac_read_search=p"]


@pytest.mark.e2e
def test_build_context_is_enough_to_build_the_package(tmp_path: Path) -> None:
    """The build stage's `pip install .` sees only what .dockerignore lets through."""
    context = tmp_path / "context"
    context.mkdir()
    for name in allowed_in_context():
        if (REPO / name).is_dir():
            shutil.copytree(
                REPO / name, context / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy(REPO / name, context / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), "."],
        cwd=context,
        capture_output=True,
        timeout=300,
        check=True,
    )
    [wheel] = tmp_path.glob("ksm_exporter-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packaged = set(archive.namelist())
        [entry_points] = [n for n in packaged if n.endswith(".dist-info/entry_points.txt")]
        assert "ksm-exporter = ksm_exporter.cli:main" in archive.read(entry_points).decode()
    sources = {str(p.relative_to(REPO)) for p in (REPO / "ksm_exporter").rglob("*.py")}
    assert sources <= packaged

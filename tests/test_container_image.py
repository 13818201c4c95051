"""The Dockerfile: lint-clean, unprivileged, and only the exporter goes into it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from ksm_exporter.privileges import file_capability, grant_to_file
from tests.support.paths import REPO
from tests.support.tools import require

DOCKERFILE = REPO / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"


def final_stage() -> str:
    return DOCKERFILE.read_text().rsplit("\nFROM ", 1)[1]


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


def test_runs_as_a_numeric_unprivileged_user() -> None:
    stage = final_stage()
    users = re.findall(r"^USER (\S+)$", stage, re.MULTILINE)
    assert users == ["65534:65534"]
    assert re.search(r'^ENTRYPOINT \["ksm-exporter"\]$', stage, re.MULTILINE)
    # Nothing from the build stage but the virtual environment.
    assert re.findall(r"^COPY .*$", stage, re.MULTILINE) == [
        "COPY --from=build /opt/ksm-exporter /opt/ksm-exporter"
    ]


def test_build_context_holds_only_what_the_image_needs() -> None:
    patterns = [
        line
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line and line[0] != "#"
    ]
    assert patterns[0] == "*"
    assert {p for p in patterns if p.startswith("!")} == {
        "!pyproject.toml",
        "!README.md",
        "!ksm_exporter/",
    }


def test_file_capability_is_dac_read_search_permitted_only(tmp_path: Path) -> None:
    """What the image does to its interpreter, read back by libcap's getcap."""
    getcap = require("getcap", "libcap2-bin")
    target = tmp_path / "python3"
    shutil.copy(os.path.realpath(sys.executable), target)
    grant_to_file(str(target))
    assert os.getxattr(target, "security.capability") == file_capability()
    shown = subprocess.run([getcap, str(target)], capture_output=True, text=True, check=True)
    assert shown.stdout.split() == [str(target), "cap_dac_read_search=p"]

"""The status view in Debian's Chromium, headless, from a real exporter on a fixture tree."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from harness.exporter_process import running_exporter
from tests.support.hostile_names import IMG_GUEST, SCRIPT_CGROUP, SVG_COMM, add_hostile_processes
from tests.support.sampling import copy_fixture
from tests.test_status_page import parsed

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is missing"),
]

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
# `status` lines whose text the page shows as it is
SAME_LINES = ("KSM ", "Scanning", "Advisor", "Options", "Memory saved", "Net profit", "Pages")


def chromium(*args: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        argv = ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def test_chromium_shows_what_status_prints_and_no_injected_element(tmp_path: Path) -> None:
    roots = copy_fixture("current", tmp_path)
    add_hostile_processes(roots)
    paths = ("--path.sysfs", roots.sysfs, "--path.procfs", roots.procfs)
    printed = subprocess.run(
        [sys.executable, "-m", "ksm_exporter", "status", *paths],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    with running_exporter(*paths) as exporter:
        dom = chromium("--dump-dom", exporter.url + "/")
        screenshot = tmp_path / "status-page.png"
        chromium(f"--screenshot={screenshot}", "--window-size=1280,800", exporter.url + "/")
    elements = parsed(dom)
    text = " ".join(" ".join(elements.text).split())
    for line in printed.splitlines():
        if line.startswith(SAME_LINES):
            assert " ".join(line[15:].split()) in text, line
    for pid, merging, profit in re.findall(
        r"^ +(\d+) .{15} +(\S+ \S+) +(\S+ \S+)  ", printed, re.MULTILINE
    ):
        assert f"{pid} " in text
        assert merging in text
        assert profit in text
    tags = [tag for tag, _ in elements.elements]
    assert "img" not in tags
    assert "script" not in tags
    assert tags.count("svg") == 2  # the two charts, none from a process's name
    assert not [a for _, attrs in elements.elements for a in attrs if a.startswith("on")]
    for name in (SVG_COMM, f"vm {IMG_GUEST}", SCRIPT_CGROUP):
        assert name in text
    assert screenshot.stat().st_size > 10_000

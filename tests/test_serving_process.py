"""The process started as `ksm-exporter` is the one that serves: nothing is re-executed."""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

import pytest

from harness.exporter_process import child_process, wait_answering, wait_listening
from harness.paths import FIXTURES

CONSOLE_SCRIPT = Path(sys.executable).with_name("ksm-exporter")


def command_line(pid: int) -> list[str]:
    with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
        return [part.decode() for part in cmdline.read().split(b"\0") if part]


def environment(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as environ:
        pairs = (entry.decode().partition("=") for entry in environ.read().split(b"\0") if entry)
        return {name: value for name, _, value in pairs}


@pytest.mark.e2e
@pytest.mark.parametrize("started_as", ["console script", "python -m"])
def test_the_started_process_serves_under_its_name(started_as: str) -> None:
    sysfs, procfs = FIXTURES / "current" / "sys", FIXTURES / "current" / "proc"
    command = [str(CONSOLE_SCRIPT)]
    if started_as == "python -m":
        command = [sys.executable, "-m", "ksm_exporter"]
    flags = [f"--path.sysfs={sysfs}", f"--path.procfs={procfs}", "--web.listen-address=127.0.0.1:0"]
    with child_process([*command, *flags]) as child:
        url = f"http://{wait_listening(child)}/metrics"
        wait_answering(child, lambda: urllib.request.urlopen(url, timeout=5).close())
        with urllib.request.urlopen(url, timeout=5) as response:
            assert "ksm_pages_sharing 30000.0" in response.read().decode()
        pid = child.process.pid
        argv = command_line(pid)
        with open(f"/proc/{pid}/comm") as comm:
            assert comm.read() == "ksm-exporter\n"  # what ps, top and pgrep -x show
        with open(f"/proc/{pid}/maps") as maps:
            libraries = {line.split()[-1] for line in maps if "/" in line}
        served_environment = environment(pid)
    # The command line is the one started, not a re-executed `python -m ksm_exporter`.
    assert argv[-len(flags) :] == flags
    assert ("-m" in argv) == (started_as == "python -m")
    # No setting travels through the environment: the child's is what the test gave it.
    assert {k for k in served_environment if k.startswith("_KSM")} == set()
    assert served_environment.keys() == os.environ.keys()
    assert [path for path in libraries if "uvloop" in path] != []  # the faster loop stays

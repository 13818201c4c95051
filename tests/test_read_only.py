"""The exporter only reads: traced by strace while it serves scrapes on this host's real
/proc and /sys with a process merging pages, it opens no file there for writing and sends
no signal, touches no other process's memory, and attaches to none."""

from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from harness.exporter_process import running_exporter
from harness.real_ksm import ksm_control, merging_child
from harness.tools import require

pytestmark = pytest.mark.realksm

INTRUSIVE = ("kill", "tkill", "tgkill", "pidfd_send_signal", "process_vm_writev", "ptrace")
OPENS = ("open", "openat", "openat2")
WRITE_FLAGS = {"O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND"}
# With -y, strace shows the path behind every file descriptor: `openat(3</proc>, "12/ksm_stat",
# O_RDONLY|O_CLOEXEC) = 7</proc/12/ksm_stat>`; a failed open keeps its argument. With -ff each
# thread writes a file of its own, so no call is split over two lines.
CALL = re.compile(r"(\w+)\((.*)\) += (-?\d+)(?:<(.*)>)?(?: .*)?")
OPEN_ARGUMENTS = re.compile(r'^(?:(?:AT_FDCWD|-?\d+)(?:<([^>]*)>)?, )?"([^"]*)"')


def traced_calls(trace: Path) -> list[tuple[str, str, str]]:
    """(syscall, arguments, path opened or "") for every call of every traced thread."""
    calls = []
    for thread in sorted(trace.parent.glob(trace.name + ".*")):
        for line in thread.read_text().splitlines():
            match = CALL.fullmatch(line)
            assert match, f"unexpected strace output: {line}"
            calls.append((match.group(1), match.group(2), match.group(4) or ""))
    return calls


def opened_path(arguments: str, resolved: str) -> str:
    """The file an open call named: what strace resolved, else its arguments joined."""
    if resolved:
        return resolved
    match = OPEN_ARGUMENTS.match(arguments)
    if not match:
        return ""
    directory, path = match.group(1) or "", match.group(2)
    return path if path.startswith("/") else os.path.join(directory, path)


def stop_traced(strace: subprocess.Popen[bytes]) -> None:
    """strace, stopped itself, would leave the exporter running: stop the exporter, and
    strace ends with it."""
    with open(f"/proc/{strace.pid}/task/{strace.pid}/children") as f:
        (exporter,) = map(int, f.read().split())
    os.kill(exporter, signal.SIGTERM)
    strace.wait(timeout=30)


def test_the_exporter_opens_proc_and_sys_read_only_and_signals_nothing(tmp_path: Path) -> None:
    strace = require("strace", "strace")
    trace = tmp_path / "trace"
    command = (
        strace,
        "-ff",
        "-y",
        "-qq",
        "-e",
        f"trace={','.join(OPENS + INTRUSIVE)}",
        "-e",
        "signal=none",
        "-o",
        str(trace),
        sys.executable,
    )
    with ksm_control() as ksm, merging_child() as child:
        ksm.set(pages_to_scan=1000, sleep_millisecs=10, run=1)
        child.wait_merged(1)
        with running_exporter(command=command) as exporter:
            scrapes = [exporter.get() for _ in range(3)]
            stop_traced(exporter.process)
    assert all(f'pid="{child.pid}"' in text for text in scrapes)

    calls = traced_calls(trace)
    kernel_files: dict[str, set[str]] = collections.defaultdict(set)
    for name, arguments, path in calls:
        opened = opened_path(arguments, path) if name in OPENS else ""
        if opened.startswith(("/proc/", "/sys/")):
            kernel_files[opened] |= set(re.findall(r"\bO_[A-Z]+", arguments))
    assert kernel_files[f"/proc/{child.pid}/ksm_stat"] >= {"O_RDONLY"}
    assert kernel_files["/sys/kernel/mm/ksm/pages_sharing"] >= {"O_RDONLY"}
    assert {
        path: flags & WRITE_FLAGS for path, flags in kernel_files.items() if flags & WRITE_FLAGS
    } == {}
    assert [call for call in calls if call[0] in INTRUSIVE] == []

"""What the measurements that run inside a lab guest (lab/capture.py, lab/fork_capture.py)
share: reading the kernel's files, writing KSM's settings, finding the processes KSM knows,
and writing the JSON document to a file or serial port.

Standard library and this project only, since a guest has nothing else; lab/initramfs.py packs
this module with them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import termios
import time
import tty
from collections.abc import Callable, Iterable, Iterator

KSM = "sys/kernel/mm/ksm"


def read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except OSError as err:  # e.g. EINVAL from a file the kernel lists but cannot show
        return f"<unreadable: {err.strerror}>"


def write_ksm(name: str, value: int) -> None:
    with open(f"/{KSM}/{name}", "w") as f:
        f.write(str(value))


def ksm_stat_counts(pid: int) -> dict[str, str]:
    content = read(f"/proc/{pid}/ksm_stat") or ""
    pairs = (line.split(None, 1) for line in content.splitlines())
    return {key.rstrip(":"): value.strip() for key, value in (p for p in pairs if len(p) == 2)}


def merging_pages(pid: int) -> int:
    """From ksm_stat, or the file of its own that kernels before 6.12 keep it in."""
    counts = ksm_stat_counts(pid)
    value = counts.get("ksm_merging_pages") or read(f"/proc/{pid}/ksm_merging_pages") or "0"
    return int(value)


def registered(pid: int) -> bool:
    """As the exporter counts it: `ksm_mergeable: yes` where the kernel writes it, rmap items
    or merged pages, so a process registered but not yet scanned is captured too."""
    counts = ksm_stat_counts(pid)
    return (
        counts.get("ksm_mergeable") == "yes"
        or counts.get("ksm_rmap_items", "0") != "0"
        or merging_pages(pid) > 0
    )


def progress(message: str) -> None:
    print(f"lab: {time.monotonic():.1f} {message}", file=sys.stderr, flush=True)


def pids() -> list[int]:
    return sorted(int(name) for name in os.listdir("/proc") if name.isdigit())


@contextlib.contextmanager
def python_child(
    script: str, *args: str, stderr: int | None = None
) -> Iterator[subprocess.Popen[str]]:
    """This Python running `script` with `args`, stdin and stdout piped as text; killed after
    in every case."""
    child = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    try:
        yield child
    finally:
        child.kill()
        child.wait()


def read_files(
    roles: dict[str, int | None], host_files: Iterable[str], pid_files: Iterable[str]
) -> dict[str, str]:
    """Every KSM file, `host_files`, and the `pid_files` of registered processes and of
    `roles`, keyed by their path below / (`sys/kernel/mm/ksm/run`, `proc/<pid>/ksm_stat`)."""
    files: dict[str, str] = {}
    for name in sorted(os.listdir(f"/{KSM}")):
        files[f"{KSM}/{name}"] = read(f"/{KSM}/{name}") or ""
    for path in host_files:
        files[path] = read(f"/{path}") or ""
    wanted = {pid for pid in roles.values() if pid is not None}
    wanted |= {pid for pid in pids() if registered(pid)}
    for pid in sorted(wanted):
        for name in pid_files:
            content = read(f"/proc/{pid}/{name}")
            if content is not None:
                files[f"proc/{pid}/{name}"] = content
    return files


def emit(document: dict[str, object], output: str) -> None:
    data = json.dumps(document).encode() + b"\n"
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOCTTY, 0o644)
    try:
        if os.isatty(fd):
            tty.setraw(fd)  # no newline translation on the serial line
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if os.isatty(fd):
            termios.tcdrain(fd)
    finally:
        os.close(fd)


def command(measure: Callable[[], dict[str, object]], description: str | None) -> None:
    """`measure`'s document, written to the file (or serial port) named by --output."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--output", required=True, help="file (or serial port) for the JSON")
    args = parser.parse_args()
    emit(measure(), args.output)

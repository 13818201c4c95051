"""Measures one running kernel: merges pages, holds ksmd still, then reads every KSM file and
ksm_stat in the same instant as a scrape of the exporter.

Runs inside a lab guest (as the guest's only job) or on a host. Standard library and this
project only, since a guest has nothing else. Writes one JSON document to `--output`:
{"release", "page_size", "clock_ticks", "roles", "notes", "files", "exposition"}, where
`files` maps paths like `sys/kernel/mm/ksm/run` or `proc/<pid>/ksm_stat` to their content.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator

from harness.eventually import eventually
from harness.merging_workload import CHILD
from lab.guest import (
    KSM,
    command,
    merging_pages,
    pids,
    progress,
    python_child,
    read,
    read_files,
    write_ksm,
)

SAVED_SETTINGS = ("pages_to_scan", "sleep_millisecs", "run")  # restored in this order
PID_FILES = ("comm", "cmdline", "cgroup", "stat", "schedstat", "ksm_stat", "ksm_merging_pages")
# Files whose content moves without KSM doing anything: left out of the same-instant check.
RESTLESS = ("proc/meminfo",)
WORKLOAD_BYTES = 8 << 20
HOLD_STILL_MS = 600_000  # ksmd sleeps this long once the pages merged
PORT = 9_700


def find_ksmd() -> int | None:
    return next((pid for pid in pids() if read(f"/proc/{pid}/comm") == "ksmd\n"), None)


def capture(roles: dict[str, int | None]) -> dict[str, str]:
    """Every KSM file, meminfo, and the files of registered processes and of `roles`."""
    return read_files(roles, ("proc/meminfo",), PID_FILES)


def ksm_view(files: dict[str, str], ksmd: int | None) -> dict[str, str]:
    """The part of a capture that only KSM changes: what must not move during a scrape."""
    busy = {"stat", "schedstat", "comm", "cmdline", "cgroup"}
    view = {}
    for path, content in files.items():
        parts = path.split("/")
        if path in RESTLESS:
            continue
        if parts[0] == "proc" and parts[2] in busy and parts[1] != str(ksmd):
            continue
        view[path] = content
    return view


@contextlib.contextmanager
def workload(method: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A child holding identical pages registered by `method`, and its first line (or why not)."""
    with python_child(CHILD, str(WORKLOAD_BYTES), method, stderr=subprocess.PIPE) as child:
        assert child.stdout is not None
        assert child.stderr is not None
        line = child.stdout.readline().strip()
        if line != "ready":
            child.wait(timeout=30)
            last = child.stderr.read().strip().splitlines()[-1:] or [f"exit {child.returncode}"]
            line = last[0]
        yield child, line


@contextlib.contextmanager
def ksm_settings() -> Iterator[None]:
    saved = {name: int(read(f"/{KSM}/{name}") or 0) for name in SAVED_SETTINGS}
    try:
        yield
    finally:
        for name in SAVED_SETTINGS:
            write_ksm(name, saved[name])


@contextlib.contextmanager
def exporter() -> Iterator[str]:
    url = f"http://127.0.0.1:{PORT}"
    argv = [sys.executable, "-m", "ksm_exporter", f"--web.listen-address=127.0.0.1:{PORT}"]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def ready() -> bool:
        if process.poll() is not None:
            raise SystemExit(f"exporter exited: {process.stderr.read() if process.stderr else ''}")
        try:
            with urllib.request.urlopen(url + "/-/ready", timeout=5) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    try:
        eventually(ready, timeout=180, interval=0.2, what="the exporter to be ready")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def scrape(url: str) -> str:
    with urllib.request.urlopen(url + "/metrics", timeout=60) as response:
        return str(response.read().decode())


def measure() -> dict[str, object]:
    notes: dict[str, str] = {}
    with ksm_settings(), workload("madvise") as (madvise, _), workload("prctl") as (prctl, why):
        roles: dict[str, int | None] = {
            "madvise": madvise.pid,
            "prctl": prctl.pid if why == "ready" else None,
            "kernel_thread": 2,  # kthreadd
            "ksmd": find_ksmd(),
        }
        notes["prctl"] = why
        progress(f"workload ready: {roles}")
        merging = [pid for pid in (roles["madvise"], roles["prctl"]) if pid is not None]
        write_ksm("pages_to_scan", 1000)
        write_ksm("sleep_millisecs", 10)
        write_ksm("run", 1)
        half = WORKLOAD_BYTES // os.sysconf("SC_PAGE_SIZE") // 2

        def merged() -> bool:
            return all(merging_pages(pid) > half for pid in merging)

        eventually(merged, timeout=120, interval=0.2, what="the workload's pages to merge")
        progress("merged")
        write_ksm("sleep_millisecs", HOLD_STILL_MS)
        still = Stillness(roles)
        eventually(still, timeout=60, interval=0.5, what="ksmd to hold still")
        progress("ksmd holds still")
        with exporter() as url:
            progress("exporter ready")
            for _ in range(5):
                before = capture(roles)
                exposition = scrape(url)
                after = capture(roles)
                if ksm_view(before, roles["ksmd"]) == ksm_view(after, roles["ksmd"]):
                    break
            else:
                notes["same_instant"] = "KSM files kept changing during every scrape"
    return {
        "release": os.uname().release,
        "page_size": os.sysconf("SC_PAGE_SIZE"),
        "clock_ticks": os.sysconf("SC_CLK_TCK"),
        "roles": roles,
        "notes": notes,
        "files": before,
        "exposition": exposition,
    }


class Stillness:
    """True once two captures in a row show the same KSM state."""

    def __init__(self, roles: dict[str, int | None]) -> None:
        self.roles = roles
        self.last: dict[str, str] | None = None

    def __call__(self) -> bool:
        view = ksm_view(capture(self.roles), self.roles["ksmd"])
        same, self.last = view == self.last, view
        return same


def main() -> None:
    command(measure, __doc__)


if __name__ == "__main__":
    main()

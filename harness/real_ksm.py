"""Real KSM on this machine: settings saved and restored, and children with mergeable memory.

Tests that change KSM settings hold one lock, so two test runs on the same host never fight
over /sys/kernel/mm/ksm, and restore run, pages_to_scan, sleep_millisecs and advisor_mode
even on failure.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from harness.eventually import eventually
from harness.merging_workload import CHILD

KSM = "/sys/kernel/mm/ksm"
SAVED_SETTINGS = ("run", "pages_to_scan", "sleep_millisecs")
LOCK_PATH = "/tmp/ksm-exporter-real-ksm.lock"
PR_SET_MEMORY_MERGE = 67
REAL_KSM_ALLOWED = "KSM_EXPORTER_TEST_REAL_KSM"


def read_ksm(name: str) -> int:
    with open(os.path.join(KSM, name)) as f:
        return int(f.read())


def write_ksm(name: str, value: int) -> None:
    with open(os.path.join(KSM, name), "w") as f:
        f.write(str(value))


def ksm_writable() -> str | None:
    """None when this process may change KSM settings, else the reason it may not."""
    if not os.path.isdir(KSM):
        return f"{KSM} does not exist: the kernel has no KSM"
    try:
        write_ksm("sleep_millisecs", read_ksm("sleep_millisecs"))
    except OSError as err:
        return f"{KSM} is not writable here: {err}"
    return None


def host_in_use(ksm: str = KSM) -> str | None:
    """Why this host's KSM is not ours to change (it already merges pages), or None.

    `KSM_EXPORTER_TEST_REAL_KSM=1` says the host is a test machine: change it anyway.
    """
    if os.environ.get(REAL_KSM_ALLOWED) == "1":
        return None
    values = {}
    for name in ("run", "pages_shared"):
        with open(os.path.join(ksm, name)) as f:
            values[name] = int(f.read())
    if values["run"] % 4 != 1 or values["pages_shared"] == 0:
        return None
    return (
        f"KSM is in use on this host (run = {values['run']}, pages_shared ="
        f" {values['pages_shared']}): set {REAL_KSM_ALLOWED}=1 to let tests change its settings"
    )


def read_advisor_mode() -> str | None:
    """The active mode of advisor_mode ("[none] scan-time"); None on kernels without it."""
    try:
        with open(os.path.join(KSM, "advisor_mode")) as f:
            modes = f.read().split()
    except FileNotFoundError:
        return None
    return next(mode.strip("[]") for mode in modes if mode.startswith("["))


def write_advisor_mode(mode: str) -> None:
    with open(os.path.join(KSM, "advisor_mode"), "w") as f:
        f.write(mode)


@dataclass
class KsmControl:
    """Changes KSM settings for one test; `restore` (which the fixture calls at the end)
    puts the ones found at the start back."""

    saved: dict[str, int]
    advisor_mode: str | None

    def set(self, **settings: int) -> None:
        for name, value in settings.items():
            write_ksm(name, value)

    def set_advisor_mode(self, mode: str) -> None:
        """Switching the mode resets pages_to_scan (set_advisor_defaults() in mm/ksm.c): set
        it first, pages_to_scan after."""
        if read_advisor_mode() != mode:
            write_advisor_mode(mode)

    def restore(self) -> None:
        # Under the scan-time advisor pages_to_scan is the advisor's own, and read-only
        # (pages_to_scan_store() returns EINVAL); a change of mode resets it. So: only what
        # differs is written, the advisor off before pages_to_scan, back as it was after it,
        # run last (run=0 stops ksmd without unmerging).
        names = ["sleep_millisecs"]
        if self.advisor_mode != "scan-time":
            names.insert(0, "pages_to_scan")
        changed = [name for name in names if read_ksm(name) != self.saved[name]]
        if "pages_to_scan" in changed and read_advisor_mode() not in (None, "none"):
            write_advisor_mode("none")
        for name in changed:
            write_ksm(name, self.saved[name])
        if self.advisor_mode is not None:
            self.set_advisor_mode(self.advisor_mode)
        if read_ksm("run") != self.saved["run"]:
            write_ksm("run", self.saved["run"])


@contextlib.contextmanager
def ksm_lock() -> Iterator[None]:
    """Held while this process changes host KSM settings or depends on host KSM state."""
    with open(LOCK_PATH, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def ksm_control() -> Iterator[KsmControl]:
    reason = ksm_writable()
    if reason:
        pytest.skip(reason)
    with ksm_lock():
        # Under the lock: what another test run changed has been put back by now.
        in_use = host_in_use()
        if in_use:
            pytest.skip(in_use)
        ksm = KsmControl({name: read_ksm(name) for name in SAVED_SETTINGS}, read_advisor_mode())
        try:
            yield ksm
        finally:
            ksm.restore()


@dataclass
class KsmChild:
    """A child process of a test that registers memory with KSM."""

    process: subprocess.Popen[str]

    @property
    def pid(self) -> int:
        return self.process.pid

    def merging_pages(self) -> int:
        """Its own count, unlike pages_sharing, which holds stale pages while ksmd sleeps."""
        with open(f"/proc/{self.pid}/ksm_merging_pages") as f:
            return int(f.read())


@dataclass
class MergingChild(KsmChild):
    def unmerge(self) -> None:
        """MADV_UNMERGEABLE or prctl(PR_SET_MEMORY_MERGE, 0), as it registered."""
        self._command("unmerge", "unmerged")

    def churn(self) -> None:
        """From now on it keeps changing its memory, so ksmd merges it again every pass."""
        self._command("churn", "churning")

    def _command(self, command: str, answer: str) -> None:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line.strip() == answer, f"merging child failed to {command}: {line!r}"

    def ksm_stat(self) -> dict[str, str]:
        return read_ksm_stat(self.pid)

    def wait_merged(self, pages: int, timeout: float = 30.0) -> int:
        return eventually(
            lambda: merged if (merged := self.merging_pages()) >= pages else None,
            timeout,
            what=f"child {self.pid} merging {pages} pages",
        )


def read_ksm_stat(pid: int | str) -> dict[str, str]:
    """`/proc/<pid>/ksm_stat` as {key without colon: value}; empty for kernel threads."""
    with open(f"/proc/{pid}/ksm_stat") as f:
        lines = [line.split() for line in f.read().splitlines()]
    return {line[0].rstrip(":"): line[1] for line in lines if len(line) == 2}


def qemu_link(directory: str) -> str:
    """A link named like QEMU's binary to this Python: a child exec'd through it has that comm.

    Python finds its standard library through the link's target, so the child runs as usual.
    """
    link = os.path.join(directory, "qemu-system-x86_64")
    os.symlink(sys.executable, link)
    return link


@contextlib.contextmanager
def merging_child(
    size_bytes: int = 32 << 20,
    method: str = "madvise",
    executable: str = sys.executable,
    argv0: str | None = None,
    extra_args: tuple[str, ...] = (),
) -> Iterator[MergingChild]:
    """A child process holding `size_bytes` of identical pages registered with KSM.

    `argv0`/`extra_args` shape its command line, e.g. to look like a QEMU guest. A bare name
    becomes a link of that name to this Python: Python looks a bare argv[0] up in PATH to find
    its standard library, and would take a real QEMU's /usr/bin for its own.
    """
    with contextlib.ExitStack() as stack:
        if argv0 is not None and "/" not in argv0:
            directory = stack.enter_context(tempfile.TemporaryDirectory())
            argv0 = os.path.join(directory, argv0)
            os.symlink(executable, argv0)
        yield stack.enter_context(
            _child(
                [argv0 or executable, "-c", CHILD, str(size_bytes), method, *extra_args], executable
            )
        )


@contextlib.contextmanager
def _child(argv: list[str], executable: str) -> Iterator[MergingChild]:
    process = subprocess.Popen(
        argv, executable=executable, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.strip() == "ready", f"merging child failed to start: {line!r}"
        yield MergingChild(process)
    finally:
        process.kill()
        process.wait()

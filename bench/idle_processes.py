"""Idle processes for benchmarks that need a host with many of them."""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import shutil
import signal
from collections.abc import Iterator

PR_SET_PDEATHSIG = 1
SLEEP = shutil.which("sleep") or "/bin/sleep"


@contextlib.contextmanager
def idle_processes(count: int) -> Iterator[list[int]]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
    wanted = count + 1000
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NPROC, (min(wanted, hard), hard))
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()
    pids: list[int] = []
    try:
        for _ in range(count):
            pid = os.fork()
            if pid == 0:  # the child: an idle `sleep`, as small as a real daemon or smaller
                try:
                    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # kept across exec
                    if os.getppid() == parent:
                        os.execv(SLEEP, ["sleep", "infinity"])
                finally:
                    os._exit(0)
            pids.append(pid)
        yield pids
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in pids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)

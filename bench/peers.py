"""The servers a benchmark compares: this exporter and Debian's node_exporter, on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from re import Pattern

from harness.exporter_process import (
    LISTENING,
    TOOLKIT_LISTENING,
    child_process,
    wait_answering,
    wait_listening,
)

NODE_EXPORTER = "prometheus-node-exporter"


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def memory(self) -> Memory:
        return memory_of(self.process.pid)


@dataclass(frozen=True)
class Memory:
    """MiB: resident (RSS), proportional share of shared pages (PSS), and private (USS)."""

    rss: float
    pss: float
    uss: float


def memory_of(pid: int) -> Memory:
    """From /proc/<pid>/smaps_rollup; USS is what the process alone costs the host."""
    kib: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            key, _, rest = line.partition(":")
            if rest.strip().endswith("kB"):
                kib[key] = int(rest.split()[0])
    private = kib["Private_Clean"] + kib["Private_Dirty"]
    return Memory(kib["Rss"] / 1024, kib["Pss"] / 1024, private / 1024)


@contextlib.contextmanager
def serving(name: str, argv: list[str], listening: Pattern[str] = LISTENING) -> Iterator[Server]:
    with child_process([*argv, "--web.listen-address=127.0.0.1:0"]) as child:
        address = wait_listening(child, listening)
        url = f"http://{address}/metrics"

        def ready() -> None:
            with urllib.request.urlopen(url, timeout=1) as response:
                response.read()

        wait_answering(child, ready)
        yield Server(name, child.process, int(address.rsplit(":", 1)[1]))


def ksm_exporter(*flags: str) -> contextlib.AbstractContextManager[Server]:
    return serving("ksm-exporter", [sys.executable, "-m", "ksm_exporter", *flags])


def node_exporter() -> contextlib.AbstractContextManager[Server]:
    if shutil.which(NODE_EXPORTER) is None:
        raise SystemExit(f"{NODE_EXPORTER} is missing: apt-get install prometheus-node-exporter")
    argv = [NODE_EXPORTER, "--collector.disable-defaults", "--collector.ksmd"]
    return serving("node_exporter", argv, TOOLKIT_LISTENING)


def machine() -> str:
    """nproc, kernel and CPU model, for the record next to every figure."""
    cpu = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (
        f"nproc {os.cpu_count()}, kernel {platform.release()}, {cpu}, "
        f"Python {platform.python_version()}"
    )

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

from tests.support.exporter_process import child_server, free_port

NODE_EXPORTER = "prometheus-node-exporter"


@dataclass
class Server:
    name: str
    process: subprocess.Popen[str]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def rss_mib(self) -> float:
        return rss_mib(self.process.pid)


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


@contextlib.contextmanager
def serving(name: str, argv: list[str], port: int) -> Iterator[Server]:
    url = f"http://127.0.0.1:{port}/metrics"

    def ready() -> None:
        with urllib.request.urlopen(url, timeout=1) as response:
            response.read()

    with child_server(argv, ready, output=subprocess.DEVNULL) as process:
        yield Server(name, process, port)


def ksm_exporter(*flags: str) -> contextlib.AbstractContextManager[Server]:
    port = free_port()
    argv = [sys.executable, "-m", "ksm_exporter", f"--web.listen-address=127.0.0.1:{port}"]
    return serving("ksm-exporter", [*argv, *flags], port)


def node_exporter() -> contextlib.AbstractContextManager[Server]:
    if shutil.which(NODE_EXPORTER) is None:
        raise SystemExit(f"{NODE_EXPORTER} is missing: apt-get install prometheus-node-exporter")
    port = free_port()
    argv = [
        NODE_EXPORTER,
        "--collector.disable-defaults",
        "--collector.ksmd",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    return serving("node_exporter", argv, port)


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

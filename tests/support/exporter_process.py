"""The real exporter as a child process on 127.0.0.1, for end-to-end tests."""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningExporter:
    process: subprocess.Popen[str]
    url: str
    tls: ssl.SSLContext | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        """host:port, as a Prometheus scrape target."""
        return urllib.parse.urlsplit(self.url).netloc

    def get(self, path: str = "/metrics", timeout: float = 10.0) -> str:
        request = urllib.request.Request(self.url + path, headers=self.headers)
        with urllib.request.urlopen(request, timeout=timeout, context=self.tls) as response:
            return str(response.read().decode())


@contextlib.contextmanager
def child_server(
    argv: Sequence[str],
    ready: Callable[[], object],
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    output: int = subprocess.PIPE,
) -> Iterator[subprocess.Popen[str]]:
    """Start a server process, wait until `ready()` stops raising OSError, stop it after."""
    process = subprocess.Popen(
        argv, env={**os.environ, **(env or {})}, cwd=cwd, stdout=output, stderr=output, text=True
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                ready()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    _out, err = process.communicate(timeout=5)
                    raise AssertionError(f"{argv[0]} did not start: {err}") from None
                time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def running_exporter(
    *args: str,
    env: dict[str, str] | None = None,
    tls: ssl.SSLContext | None = None,
    headers: dict[str, str] | None = None,
    command: Sequence[str] = (sys.executable,),
    cwd: str | None = None,
) -> Iterator[RunningExporter]:
    """`tls` (a client context) and `headers` are what the readiness poll and `get` use;
    `command` runs Python, e.g. through setpriv as another user."""
    port = free_port()
    argv = [*command, "-m", "ksm_exporter", f"--web.listen-address=127.0.0.1:{port}", *args]
    scheme = "https" if tls else "http"
    url = f"{scheme}://127.0.0.1:{port}"
    headers = headers or {}

    def ready() -> None:
        request = urllib.request.Request(url + "/-/ready", headers=headers)
        with urllib.request.urlopen(request, timeout=1, context=tls) as response:
            response.read()

    with child_server(argv, ready, env, cwd) as process:
        yield RunningExporter(process, url, tls, headers)

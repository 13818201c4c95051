"""The real exporter as a child process on 127.0.0.1, for end-to-end tests.

The child binds a port of its own choosing (`127.0.0.1:0`) and logs the address it got, so
no test races another program for a port it found free. Its output goes to a file, never to
a pipe nobody reads.
"""

from __future__ import annotations

import contextlib
import os
import re
import ssl
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from harness.eventually import eventually

START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
# The exporter's "listening" log line (logfmt) names each bound address.
LISTENING = re.compile(r"\bmsg=listening address=(\S+)")
# Prometheus and node_exporter (their exporter-toolkit) log theirs like this.
TOOLKIT_LISTENING = re.compile(r'msg="Listening on" address=(\S+)')


class ChildExited(Exception):
    """The child process ended while a test waited for it: no use waiting longer."""


class Child:
    """A process whose stdout and stderr go to a temporary file, kept readable after exit."""

    def __init__(
        self,
        argv: Sequence[str],
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        new_session: bool = False,
    ) -> None:
        self._output = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.argv = list(argv)
        self.process = subprocess.Popen(
            self.argv,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )
        self._final: str | None = None

    def output(self) -> str:
        """Everything the process wrote so far (all of it, once stopped)."""
        if self._final is not None:
            return self._final
        return os.pread(self._output.fileno(), 1 << 24, 0).decode(errors="replace")

    def running(self) -> bool:
        if self.process.poll() is not None:
            raise ChildExited(
                f"{self.argv[0]} exited with {self.process.returncode}:\n{self.output()}"
            )
        return True

    def stop(self) -> str:
        """Terminates the process (kills it after STOP_TIMEOUT); returns all it wrote."""
        if self._final is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self._final = self.output()
            self._output.close()
        return self._final


@contextlib.contextmanager
def child_process(
    argv: Sequence[str], env: dict[str, str] | None = None, cwd: str | None = None
) -> Iterator[Child]:
    child = Child(argv, env, cwd)
    try:
        yield child
    finally:
        child.stop()


def wait_listening(child: Child, pattern: re.Pattern[str] = LISTENING) -> str:
    """The first address the child logged as bound, once it has."""

    def logged() -> str | None:
        match = pattern.search(child.output()) if child.running() else None
        return match.group(1).split(",")[0] if match else None

    return eventually(logged, START_TIMEOUT, what=f"{child.argv[0]} listening")


def wait_answering(child: Child, probe: Callable[[], object]) -> None:
    """Until `probe` stops raising OSError, while the child runs."""

    def answered() -> bool:
        child.running()
        try:
            probe()
        except OSError:
            return False
        return True

    eventually(answered, START_TIMEOUT, what=f"{child.argv[0]} answering")


@dataclass
class RunningExporter:
    child: Child
    url: str
    tls: ssl.SSLContext | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.child.process

    @property
    def address(self) -> str:
        """host:port, as a Prometheus scrape target."""
        return urllib.parse.urlsplit(self.url).netloc

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])

    def get(self, path: str = "/metrics", timeout: float = 10.0) -> str:
        request = urllib.request.Request(self.url + path, headers=self.headers)
        with urllib.request.urlopen(request, timeout=timeout, context=self.tls) as response:
            return str(response.read().decode())

    def log(self) -> str:
        return self.child.output()

    def stop(self) -> str:
        """Stops the exporter; its whole log."""
        return self.child.stop()


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
    `command` runs Python, e.g. through setpriv as another user. `args` may not turn the
    info log lines off: the bound address is read from one."""
    argv = [*command, "-m", "ksm_exporter", "--web.listen-address=127.0.0.1:0", *args]
    headers = headers or {}
    with child_process(argv, env, cwd) as child:
        url = f"{'https' if tls else 'http'}://{wait_listening(child)}"

        def ready() -> None:
            request = urllib.request.Request(url + "/-/ready", headers=headers)
            with urllib.request.urlopen(request, timeout=1, context=tls) as response:
                response.read()

        wait_answering(child, ready)
        yield RunningExporter(child, url, tls, headers)

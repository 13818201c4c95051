"""Process churn on the real host while many clients scrape the real exporter with the
per-process sweep on: every scrape answers 200 with the complete metric set."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import sys
import threading
from collections.abc import Iterator

import pytest

from harness.eventually import eventually
from harness.exporter_process import Child, RunningExporter, running_exporter
from harness.exposition import names, parse_samples

pytestmark = pytest.mark.e2e

ALIVE = 300
CLIENTS = 32
SCRAPES = 1000

# Keeps ALIVE short-lived processes (50-500 ms each) running, replacing each as it exits.
CHURNER = r"""
import os, random, sys
alive, started = set(), 0
def spawn():
    global started
    lifetime = "%.2f" % random.uniform(0.05, 0.5)
    alive.add(os.posix_spawn("/bin/sleep", ["sleep", lifetime], os.environ))
    started += 1
while len(alive) < int(sys.argv[1]):
    spawn()
print("ready", flush=True)
while True:
    pid, _status = os.waitpid(-1, 0)
    alive.discard(pid)
    spawn()
    if started % 100 == 0:
        print(started, flush=True)
"""


@contextlib.contextmanager
def churning(alive: int) -> Iterator[Child]:
    churner = Child([sys.executable, "-c", CHURNER, str(alive)], new_session=True)
    try:
        eventually(lambda: "ready" in churner.output() and churner.running(), 30, what="churn")
        yield churner
    finally:
        os.killpg(churner.process.pid, signal.SIGKILL)
        churner.stop()


def scrape_many(exporter: RunningExporter, count: int, required: set[str]) -> list[str]:
    """`count` scrapes over CLIENTS keep-alive connections; the failures, described."""
    port = int(exporter.url.rsplit(":", 1)[1])
    failures: list[str] = []
    lock = threading.Lock()
    remaining = iter(range(count))

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            while True:
                with lock:
                    if next(remaining, None) is None:
                        return
                connection.request("GET", "/metrics")
                response = connection.getresponse()
                text = response.read().decode()
                missing = required - names(parse_samples(text))
                if response.status != 200 or missing:
                    with lock:
                        failures.append(f"{response.status}, missing {sorted(missing)}")
        except Exception as err:
            with lock:
                failures.append(repr(err))
        finally:
            connection.close()

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "scrapes hung"
    return failures


def test_scrapes_stay_complete_while_processes_come_and_go() -> None:
    with running_exporter("--collector.process") as exporter:
        reference = names(parse_samples(exporter.get()))
        # Per-process series follow what runs on the host, and the tuning advice what KSM does
        # there (it needs full scans to judge); everything else must always be there.
        required = {
            name for name in reference if not name.startswith(("ksm_process_", "ksm_tuning_"))
        }
        assert {
            "ksm_available",
            "ksm_processes_registered",
            "ksm_exporter_processes_scanned",
        } <= required
        with churning(ALIVE) as churner:
            failures = scrape_many(exporter, SCRAPES, required)
            os.killpg(churner.process.pid, signal.SIGSTOP)
            progress = [line for line in churner.output().split() if line.isdigit()]
        assert failures == []
        assert exporter.process.poll() is None
        # The churn was real: hundreds of processes started and exited during the scrapes.
        assert progress, "no process exited and was replaced during the scrapes"
        assert int(progress[-1]) >= 2 * ALIVE

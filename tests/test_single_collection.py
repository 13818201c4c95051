"""Fifty simultaneous scrapes of the real exporter cause one collection, counted from outside.

One process's `ksm_stat` in a copy of the fixture is a named pipe: each collection's sweep
opens it once and blocks until this test writes into it, so the test both holds the
collection open while the scrapes pile up and counts how many collections there were.
"""

from __future__ import annotations

import contextlib
import errno
import http.client
import os
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from harness.eventually import eventually
from harness.exporter_process import running_exporter
from harness.exposition import parse_samples
from harness.paths import FIXTURES

pytestmark = pytest.mark.e2e

SCRAPES = 50
PID = "1201"


class CountingPipe:
    """Answers each open of the pipe with `content` once `release` is set; counts them."""

    def __init__(self, path: Path, content: bytes) -> None:
        self.path = path
        self.content = content
        self.opens = 0
        self.release = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not self.release.wait(0.01):
                continue
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as err:
                if err.errno != errno.ENXIO:  # ENXIO: no reader has it open yet
                    raise
                time.sleep(0.005)
                continue
            try:
                os.write(fd, self.content)
            finally:
                os.close(fd)
            self.opens += 1
            time.sleep(0.05)  # let the reader see end-of-file before the next open

    @contextlib.contextmanager
    def serving(self) -> Iterator[CountingPipe]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(timeout=5)


def unread_bytes_at(port: int) -> int:
    """Bytes waiting in the receive queues of 127.0.0.1:`port`'s accepted connections."""
    unread = 0
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            local_port = int(fields[1].split(":")[1], 16)
            if local_port == port and fields[3] == "01":  # established
                unread += int(fields[4].split(":")[1], 16)
    return unread


def test_fifty_simultaneous_scrapes_cause_one_collection(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    shutil.copytree(FIXTURES / "current" / "proc", proc)
    stat = proc / PID / "ksm_stat"
    content = stat.read_bytes()
    stat.unlink()
    os.mkfifo(stat)
    sysfs = FIXTURES / "current" / "sys"
    with (
        running_exporter(f"--path.sysfs={sysfs}", f"--path.procfs={proc}") as exporter,
        CountingPipe(stat, content).serving() as pipe,
        ThreadPoolExecutor(SCRAPES) as clients,
    ):
        sent: list[int] = []

        def scrape() -> tuple[int, str]:
            connection = http.client.HTTPConnection("127.0.0.1", exporter.port, timeout=30)
            try:
                connection.request("GET", "/metrics")
                sent.append(1)
                response = connection.getresponse()
                return response.status, response.read().decode()
            finally:
                connection.close()

        scrapes = [clients.submit(scrape) for _ in range(SCRAPES)]
        # Every request sent and read by the exporter: all wait on the one collection.
        eventually(
            lambda: len(sent) == SCRAPES and unread_bytes_at(exporter.port) == 0,
            20,
            what=f"{SCRAPES} requests read by the exporter",
        )
        assert not any(s.done() for s in scrapes)
        pipe.release.set()
        answers = [s.result(timeout=30) for s in scrapes]
        assert [status for status, _text in answers] == [200] * SCRAPES
        assert len({text for _status, text in answers}) == 1  # one collection's bytes
        assert pipe.opens == 1
        merging = {
            dict(labels)["pid"]: pages
            for (name, labels), pages in parse_samples(answers[0][1]).items()
            if name == "ksm_process_merging_pages"
        }
        assert merging[PID] == 120000  # the piped ksm_stat was read
        exporter.get()
        assert pipe.opens == 2

"""A per-process sweep stuck in the kernel does not stop the scrapes."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient

from harness.eventually import eventually_async
from harness.exposition import Samples, parse_samples, render_async, value
from harness.paths import FIXTURES, fixture_roots
from ksm_exporter.collector.collection import KsmCollection
from ksm_exporter.reading.host_reader import HostReader
from ksm_exporter.server.app import make_app
from ksm_exporter.sources.roots import Roots

# The sweep deadline is waited out in real time, with a thread held in the kernel by a FIFO.
pytestmark = pytest.mark.e2e

DEADLINE = 0.5
PID = "1201"


@contextlib.contextmanager
def stuck_ksm_stat(proc: Path) -> Iterator[tuple[Path, bytes]]:
    """One process's ksm_stat as a named pipe: opening it blocks, as a read waiting for a
    process's memory map lock does, until the test writes. Released in any case."""
    stat = proc / PID / "ksm_stat"
    content = stat.read_bytes()
    stat.unlink()
    os.mkfifo(stat)
    try:
        yield stat, content
    finally:
        with contextlib.suppress(OSError):  # ENXIO: no reader is stuck on it
            os.close(os.open(stat, os.O_WRONLY | os.O_NONBLOCK))


def release(stat: Path, content: bytes) -> None:
    fd = os.open(stat, os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(fd, content)
    finally:
        os.close(fd)


def process_errors(samples: Samples) -> float:
    return value(samples, "ksm_exporter_collect_errors_total", source="process")


async def errors_of_a_plain_sweep() -> float:
    """The fixture holds a few broken processes of its own, counted on every sweep."""
    collection = KsmCollection(HostReader(fixture_roots("current"), 4096))
    return process_errors(parse_samples(await render_async(collection)))


async def test_scrapes_go_on_without_a_stuck_sweep(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    proc = tmp_path / "proc"
    shutil.copytree(FIXTURES / "current" / "proc", proc)
    roots = Roots(str(FIXTURES / "current" / "sys"), str(proc))
    collection = KsmCollection(HostReader(roots, 4096, sweep_deadline=DEADLINE))
    client = await aiohttp_client(make_app(collection))
    with stuck_ksm_stat(proc) as (stat, content):
        timings, answers = [], []
        for _ in range(2):
            started = time.monotonic()
            response = await client.get("/metrics")
            assert response.status == 200
            answers.append(parse_samples(await response.text()))
            timings.append(time.monotonic() - started)
        # The first scrape waited for the deadline; the second started no sweep of its own.
        assert DEADLINE <= timings[0] < DEADLINE + 2
        assert timings[1] < DEADLINE
        for count, samples in enumerate(answers, start=1):
            assert value(samples, "ksm_pages_sharing") == 30000
            assert ("ksm_processes_registered", ()) not in samples
            assert process_errors(samples) == count

        release(stat, content)

        async def finished() -> bool:
            return not collection.reader.sweep.busy

        await eventually_async(finished, 5, what="the released sweep finished")
        stat.unlink()  # the process's lock is free again: its file reads as usual
        stat.write_bytes(content)

        recovered = parse_samples(await (await client.get("/metrics")).text())
        assert value(recovered, "ksm_processes_registered") > 0
        assert process_errors(recovered) == 2 + await errors_of_a_plain_sweep()

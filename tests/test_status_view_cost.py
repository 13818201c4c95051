"""What a view of `/` or `/api/status` costs: the last collection while it is younger than the
sampling interval, the slow walks of /proc at most once an interval (and behind the view
while what it kept is younger than TUNER_PROCESSES_STALE_SECONDS), one sampler and one
history however many applications serve a reader."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from ksm_exporter.collector.collection import KsmCollection
from ksm_exporter.reading.host_reader import HostReader
from ksm_exporter.reading.kept import Kept
from ksm_exporter.server.app import COLLECTION_KEY, HISTORY_KEY, make_app
from ksm_exporter.sources.roots import Roots
from tests.support.sampling import ManualClock, copy_fixture, run_tuners, write_ksm

pytestmark = pytest.mark.unit

PAGE_SIZE = 4096
INTERVAL = 5.0  # the sampling interval: the sampler's loop ticks only once in a test
KIB = 1024


def test_a_kept_reading_is_read_once_an_interval() -> None:
    clock = ManualClock()
    reads: list[float] = []

    def read() -> int:
        reads.append(clock.now)
        return len(reads)

    kept = Kept(read, 1.0, clock)
    assert [kept() for _ in range(5)] == [1] * 5
    clock.now += 0.999
    assert kept() == 1
    clock.now += 0.001
    assert [kept() for _ in range(3)] == [2] * 3
    assert reads == [1000.0, 1001.0]


def test_a_stale_reading_is_answered_at_once_and_read_again_behind() -> None:
    clock = ManualClock()
    reads: list[float] = []

    def read() -> int:
        reads.append(clock.now)
        return len(reads)

    kept = Kept(read, 1.0, clock, stale_seconds=30.0)
    assert kept() == 1
    clock.now += 1.0
    assert kept() == 1  # at once, the reading kept; a new read starts behind it
    kept.join(10)
    assert kept() == 2
    clock.now += 30.0  # too old to show: the caller waits for a read
    assert kept() == 3
    assert reads == [1000.0, 1001.0, 1031.0]


def test_callers_at_once_share_one_read() -> None:
    started, release = threading.Event(), threading.Event()
    reads = []

    def read() -> int:
        reads.append(1)
        started.set()
        release.wait(10)
        return len(reads)

    kept = Kept(read, 60.0, ManualClock())
    with ThreadPoolExecutor(8) as pool:
        answers = [pool.submit(kept) for _ in range(8)]
        assert started.wait(10)
        release.set()
        assert [answer.result() for answer in answers] == [1] * 8
    assert len(reads) == 1


async def served(
    aiohttp_client: AiohttpClient, tmp_path: Path, tuners: tuple[str, ...] = ()
) -> tuple[TestClient, Roots, ManualClock]:  # type: ignore[type-arg]
    """An app on a copy of the `current` fixture, with the other `tuners` running, on a clock
    the test moves."""
    roots, clock = copy_fixture("current", tmp_path), ManualClock()
    run_tuners(roots, *tuners)
    reader = HostReader(roots, PAGE_SIZE, sample_interval=INTERVAL, clock=clock)
    return await aiohttp_client(make_app(KsmCollection(reader))), roots, clock


async def pages_sharing(client: TestClient) -> int:  # type: ignore[type-arg]
    document = await (await client.get("/api/status")).json()
    return int(document["ksm"]["pages_sharing"])


async def test_views_use_the_last_collection_while_it_is_fresh(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    client, roots, clock = await served(aiohttp_client, tmp_path)
    assert await pages_sharing(client) == 30000  # the fixture's: the first view collects
    write_ksm(roots, "pages_sharing", 31000)
    clock.now += INTERVAL * 0.99
    for _ in range(3):  # reloads within the interval: no new collection
        assert await pages_sharing(client) == 30000
        assert (await client.get("/")).status == 200
    clock.now += INTERVAL * 0.01
    assert await pages_sharing(client) == 31000
    # A scrape collects whatever the age of the last collection, and the views show it.
    write_ksm(roots, "pages_sharing", 32000)
    assert "ksm_pages_sharing 32000" in await (await client.get("/metrics")).text()
    assert await pages_sharing(client) == 32000


def write_qemu(roots: Roots, pid: int, rss_kib: int) -> None:
    """A QEMU process as ksmtuned counts it: `pgrep -f '^qemu-system.*-enable-kvm'`, and the
    resident size task_mem() writes in kB."""
    directory = Path(roots.procfs) / str(pid)
    directory.mkdir()
    (directory / "comm").write_text("qemu-system-x86\n")
    (directory / "cmdline").write_bytes(b"qemu-system-x86_64\0-enable-kvm\0")
    (directory / "status").write_text(
        f"Name:\tqemu-system-x86\nVmSize:\t{2 * rss_kib} kB\nVmRSS:\t{rss_kib} kB\n"
    )


async def committed(client: TestClient) -> int:  # type: ignore[type-arg]
    document = await (await client.get("/api/status")).json()
    return int(document["advice"]["others"]["ksmtuned"]["committed_bytes"])


async def test_the_qemu_processes_are_walked_once_an_interval(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    client, roots, clock = await served(aiohttp_client, tmp_path, tuners=("ksmtuned",))
    assert await committed(client) == 0  # the fixture's QEMU has no -enable-kvm
    write_qemu(roots, 4242, 1 << 20)
    # A new collection (a scrape) does not walk /proc again within the interval.
    assert (await client.get("/metrics")).status == 200
    views = await asyncio.gather(*(committed(client) for _ in range(5)))
    assert views == [0] * 5
    clock.now += INTERVAL
    # The next view shows the walk kept, and a walk for newer ones starts behind it.
    assert await committed(client) == 0
    client.app[COLLECTION_KEY].reader.tuner_processes.join(10)
    assert await committed(client) == (1 << 20) * KIB


async def test_two_apps_on_one_reader_share_its_sampler_and_history(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    reader = HostReader(copy_fixture("current", tmp_path), PAGE_SIZE, sample_interval=INTERVAL)
    collection = KsmCollection(reader)
    first, second = make_app(collection), make_app(collection)
    assert len(reader.sampler.observers) == 1
    assert first[HISTORY_KEY] is second[HISTORY_KEY]
    one = await aiohttp_client(first)
    two = await aiohttp_client(second)
    loops = [t for t in asyncio.all_tasks() if t.get_name() == "ksm-cost-sampler"]
    assert len(loops) == 1
    await one.close()
    assert not loops[0].done()  # the second app still serves
    assert (await two.get("/api/status")).status == 200
    await two.close()
    await asyncio.sleep(0)
    assert loops[0].done()

"""`status` and `/metrics` read the host through the same reader: on one fixture tree,
`status --json` states the figures the server serves for it."""

from __future__ import annotations

from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient

from harness.exposition import Samples, parse_samples, value
from harness.paths import fixture_roots
from ksm_exporter.collector.collection import KsmCollection
from ksm_exporter.reading.host_reader import HostReader
from ksm_exporter.reading.processes import ProcessOptions
from ksm_exporter.server.app import make_app
from ksm_exporter.sources.ksm_files import KSM_FILES
from ksm_exporter.status.build import build_status
from ksm_exporter.status.render import to_json
from ksm_exporter.status.snapshot import take_snapshot
from tests.support.sampling import CLOCK_TICKS, ManualClock

pytestmark = pytest.mark.unit

PAGE_SIZE = 4096
TOP = 3


async def served_and_stated(
    aiohttp_client: AiohttpClient,
) -> tuple[Samples, dict[str, Any]]:
    roots = fixture_roots("current")  # read, never written
    collection = KsmCollection(
        HostReader(roots, PAGE_SIZE, ProcessOptions(limit=TOP), clock_ticks=CLOCK_TICKS)
    )
    client = await aiohttp_client(make_app(collection))
    served = parse_samples(await (await client.get("/metrics")).text())
    await client.close()
    clock = ManualClock()

    def sleep(seconds: float) -> None:
        clock.now += seconds

    snapshot = take_snapshot(
        roots, 0.2, TOP, clock=clock, sleep=sleep, page_size=PAGE_SIZE, clock_ticks=CLOCK_TICKS
    )
    return served, to_json(build_status(snapshot))


async def test_settings_and_counters_are_the_same(
    aiohttp_client: AiohttpClient,
) -> None:
    served, stated = await served_and_stated(aiohttp_client)
    compared = 0
    for spec in KSM_FILES:
        if stated["ksm"][spec.name] is None:
            continue
        assert value(served, spec.metric) * spec.divisor == pytest.approx(stated["ksm"][spec.name])
        compared += 1
    assert compared == len(KSM_FILES)  # the fixture has every file


async def test_savings_and_profit_are_the_same(
    aiohttp_client: AiohttpClient,
) -> None:
    served, stated = await served_and_stated(aiohttp_client)
    memory = stated["memory"]
    assert value(served, "ksm_memory_saved_bytes") == memory["saved_bytes"]
    assert value(served, "ksm_memory_saved_ratio") == memory["saved_ratio"]
    assert value(served, "ksm_mappings_per_shared_page") == memory["mappings_per_shared_page"]
    assert (
        value(served, "ksm_unshared_pages_per_sharing_page")
        == memory["unshared_pages_per_sharing_page"]
    )
    assert value(served, "ksm_page_size_bytes") == memory["page_size_bytes"]
    assert value(served, "ksm_general_profit_bytes") == stated["ksm"]["general_profit"]
    assert value(served, "ksm_ksmd_cpu_seconds_total") == stated["ksmd"]["cpu_seconds_total"]


async def test_processes_are_the_same(aiohttp_client: AiohttpClient) -> None:
    served, stated = await served_and_stated(aiohttp_client)
    processes = stated["processes"]
    assert value(served, "ksm_processes_registered") == processes["registered"]
    assert value(served, "ksm_processes_merging") == processes["merging"]
    served_pids = {
        dict(labels)["pid"] for name, labels in served if name == "ksm_process_merging_pages"
    }
    assert served_pids == {str(p["pid"]) for p in processes["top"]}
    assert len(served_pids) == TOP
    for process in processes["top"]:
        labels = {k: process[k] for k in ("comm", "vm", "cgroup") if process[k]}
        pid = str(process["pid"])
        assert (
            value(served, "ksm_process_merging_pages", pid=pid, **labels)
            == (process["merging_pages"])
        )
        assert (
            value(served, "ksm_process_profit_bytes", pid=pid, **labels)
            == (process["profit_bytes"])
        )

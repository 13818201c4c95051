from __future__ import annotations

import asyncio
import gzip
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_families
from pytest_aiohttp import AiohttpClient

from harness.eventually import eventually_async
from harness.exposition import parse_samples, value
from harness.paths import fixture_roots
from ksm_exporter.collector.collection import KsmCollection
from ksm_exporter.reading.host_reader import HostReader
from ksm_exporter.server.app import make_app
from ksm_exporter.sources.roots import Roots
from tests.support.calls import Calls

pytestmark = pytest.mark.unit


async def client_for(
    aiohttp_client: AiohttpClient, roots: Roots, path: str = "/metrics"
) -> TestClient:  # type: ignore[type-arg]
    return await aiohttp_client(make_app(KsmCollection(HostReader(roots, 4096)), path))


async def test_metrics_in_prometheus_text(aiohttp_client: AiohttpClient) -> None:
    client = await client_for(aiohttp_client, fixture_roots("current"))
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = parse_samples(await response.text())
    assert value(samples, "ksm_pages_sharing") == 30000
    assert value(samples, "ksm_available") == 1


async def test_openmetrics_when_asked(aiohttp_client: AiohttpClient) -> None:
    client = await client_for(aiohttp_client, fixture_roots("current"))
    response = await client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    text = await response.text()
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in om_families(text)}  # type: ignore[no-untyped-call]
    assert families["ksm_full_scans"].type == "counter"
    assert families["ksm_full_scans"].samples[0].value == 42


async def test_gzip_when_accepted(aiohttp_client: AiohttpClient) -> None:
    client = await client_for(aiohttp_client, fixture_roots("current"))
    response = await client.get(
        "/metrics", headers={"Accept-Encoding": "gzip"}, auto_decompress=False
    )
    assert response.headers["Content-Encoding"] == "gzip"
    text = gzip.decompress(await response.read()).decode()
    assert value(parse_samples(text), "ksm_pages_shared") == 1200
    plain = await client.get("/metrics", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers


async def test_no_ksm_answers_200_with_available_zero(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    client = await client_for(aiohttp_client, Roots(str(tmp_path), str(tmp_path)))
    response = await client.get("/metrics")
    assert response.status == 200
    assert value(parse_samples(await response.text()), "ksm_available") == 0


async def test_landing_page_links_to_metrics(aiohttp_client: AiohttpClient) -> None:
    client = await client_for(aiohttp_client, fixture_roots("current"), path="/ksm")
    response = await client.get("/")
    assert response.status == 200
    assert response.content_type == "text/html"
    assert '<a href="/ksm">' in await response.text()
    assert (await client.get("/ksm")).status == 200
    assert (await client.get("/metrics")).status == 404


async def test_health_and_readiness(aiohttp_client: AiohttpClient) -> None:
    client = await client_for(aiohttp_client, fixture_roots("current"))
    for path in ("/-/healthy", "/-/ready"):
        response = await client.get(path)
        assert response.status == 200


async def test_concurrent_scrapes_share_one_collection(aiohttp_client: AiohttpClient) -> None:
    collection = KsmCollection(HostReader(fixture_roots("current"), 4096))
    gate = asyncio.Event()
    original = collection.collect_async
    collections = 0

    async def slow_collect() -> list:  # type: ignore[type-arg]
        nonlocal collections
        collections += 1
        await gate.wait()
        return await original()

    collection.collect_async = slow_collect  # type: ignore[method-assign]
    client = await aiohttp_client(make_app(collection))
    scrapes = [asyncio.create_task(client.get("/metrics")) for _ in range(50)]
    assert client.server.runner is not None
    server = client.server.runner.server
    assert server is not None

    async def all_in() -> bool:  # every request handled so far waits on the one collection
        return server.requests_count == 50

    await eventually_async(all_in, 10, what="50 requests in the server")
    gate.set()
    responses = await asyncio.gather(*scrapes)
    assert [r.status for r in responses] == [200] * 50
    assert collections == 1
    await client.get("/metrics")
    assert collections == 2


async def test_unknown_path_and_method(aiohttp_client: AiohttpClient) -> None:
    client = await client_for(aiohttp_client, fixture_roots("current"))
    assert (await client.get("/nope")).status == 404
    assert (await client.post("/metrics")).status == 405


async def test_cost_sampler_runs_while_the_app_serves(
    aiohttp_client: AiohttpClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    collection = KsmCollection(HostReader(fixture_roots("current"), 4096, sample_interval=0.01))
    ticks = Calls(monkeypatch, collection.reader.sampler, "tick")
    client = await aiohttp_client(make_app(collection))

    async def ticked() -> bool:
        return ticks.count >= 2

    await eventually_async(ticked, 10, interval=0.01, what="two ticks of the sampler")
    samples = parse_samples(await (await client.get("/metrics")).text())
    assert value(samples, "ksm_ksmd_cpu_ratio") == 0.0  # the fixture's ksmd is idle
    await client.close()
    stopped_at = ticks.count
    await asyncio.sleep(0.05)
    assert ticks.count == stopped_at

"""aiohttp application: metrics, the status view, its JSON, and health endpoints."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from aiohttp import hdrs, web
from prometheus_client.core import Metric

from ksm_exporter.collector.collection import KsmCollection
from ksm_exporter.derive.sharing import SharingSeen
from ksm_exporter.server.basic_auth import Guard
from ksm_exporter.server.exposition import Exposition
from ksm_exporter.server.sampling import sampling_of
from ksm_exporter.server.single_flight import SingleFlight
from ksm_exporter.server.status_view import (
    ServerReading,
    html_page,
    json_document,
    reading_now,
)
from ksm_exporter.status.history import History
from ksm_exporter.status.page import CONTENT_SECURITY_POLICY

log = logging.getLogger(__name__)

COLLECTION_KEY = web.AppKey("collection", KsmCollection)
SCRAPE_KEY = web.AppKey("scrape", SingleFlight[Exposition])
HISTORY_KEY = web.AppKey("history", History)

# Every response: no content sniffing, no referrer; nothing but the page may load anything.
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
NOTHING_LOADS = "default-src 'none'; frame-ancestors 'none'"


async def security_headers(_: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)
    response.headers.setdefault("Content-Security-Policy", NOTHING_LOADS)


def make_app(
    collection: KsmCollection,
    telemetry_path: str = "/metrics",
    auth: Guard | None = None,
    server_families: Callable[[], Iterable[Metric]] = tuple,
    sharing: Callable[[], SharingSeen | None] = lambda: None,
) -> web.Application:
    """Every path sits behind `auth` when given: the web-config format has no exemptions.
    `server_families`: the HTTP side's own metrics, served after the collection's;
    `sharing`: the sharing collector's last audit, for the status views."""
    app = web.Application(middlewares=[auth.middleware] if auth else [])
    reader = collection.reader
    sampling = sampling_of(reader)  # shared with any other app serving this reader
    history = sampling.history

    async def scrape_once() -> Exposition:
        return Exposition([*await collection.collect_async(), *server_families()])

    app.cleanup_ctx.append(sampling.serve)  # the scan-cost sampler runs while the app serves
    app.on_response_prepare.append(security_headers)
    app[COLLECTION_KEY] = collection
    app[SCRAPE_KEY] = SingleFlight(scrape_once)
    app[HISTORY_KEY] = history

    async def metrics(request: web.Request) -> web.Response:
        exposition = await request.app[SCRAPE_KEY]()
        body, content_type, gzipped = exposition.render(
            request.headers.get(hdrs.ACCEPT, ""), request.headers.get(hdrs.ACCEPT_ENCODING, "")
        )
        response = web.Response(body=body, headers={hdrs.CONTENT_TYPE: content_type})
        if gzipped:
            response.headers[hdrs.CONTENT_ENCODING] = "gzip"
        return response

    async def status_reading(request: web.Request) -> ServerReading:
        """The last collection while it is younger than the sampling interval, as views and
        reloads come faster than the figures change; else the one in flight, or a new one."""
        if reader.fresh(reader.sampler.interval) is None:
            await request.app[SCRAPE_KEY]()
        reading = reading_now(collection, history, sharing())
        assert reading is not None  # a collection has just completed
        return reading

    async def off_loop(render: Callable[[], str]) -> str:
        return await asyncio.get_running_loop().run_in_executor(None, render)

    async def index(request: web.Request) -> web.Response:
        reading = await status_reading(request)
        text = await off_loop(lambda: html_page(collection, reading, telemetry_path))
        return web.Response(
            text=text,
            content_type="text/html",
            headers={
                "Content-Security-Policy": CONTENT_SECURITY_POLICY,
                hdrs.CACHE_CONTROL: "no-store",
            },
        )

    async def api_status(request: web.Request) -> web.Response:
        reading = await status_reading(request)
        status, text = await asyncio.get_running_loop().run_in_executor(
            None, json_document, collection, reading
        )
        return web.Response(
            status=status,
            text=text,
            content_type="application/json",
            headers={hdrs.CACHE_CONTROL: "no-store"},
        )

    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="OK\n")

    app.router.add_get(telemetry_path, metrics)
    app.router.add_get("/", index)
    app.router.add_get("/api/status", api_status)
    app.router.add_get("/-/healthy", ok)
    app.router.add_get("/-/ready", ok)
    return app

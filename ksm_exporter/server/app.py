"""aiohttp application: metrics, landing page and health endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
from collections.abc import AsyncIterator, Callable, Iterable

from aiohttp import hdrs, web
from prometheus_client.core import Metric

from ksm_exporter.collector.collection import KsmCollection
from ksm_exporter.server.basic_auth import Guard
from ksm_exporter.server.exposition import Exposition
from ksm_exporter.server.single_flight import SingleFlight

log = logging.getLogger(__name__)

COLLECTION_KEY = web.AppKey("collection", KsmCollection)
SCRAPE_KEY = web.AppKey("scrape", SingleFlight[Exposition])

LANDING = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>KSM Exporter</title></head>
<body>
<h1>KSM Exporter</h1>
<p>Prometheus exporter for Linux Kernel Samepage Merging.</p>
<ul>
<li><a href="{path}">Metrics</a></li>
<li><a href="/-/healthy">Health</a></li>
<li><a href="/-/ready">Readiness</a></li>
</ul>
</body>
</html>
"""


def make_app(
    collection: KsmCollection,
    telemetry_path: str = "/metrics",
    auth: Guard | None = None,
    server_families: Callable[[], Iterable[Metric]] = tuple,
) -> web.Application:
    """Every path sits behind `auth` when given: the web-config format has no exemptions.
    `server_families`: the HTTP side's own metrics, served after the collection's."""
    app = web.Application(middlewares=[auth.middleware] if auth else [])

    async def scrape_once() -> Exposition:
        return Exposition([*await collection.collect_async(), *server_families()])

    async def sampling(_: web.Application) -> AsyncIterator[None]:
        """The scan-cost sampler runs while the app serves."""
        task = asyncio.create_task(collection.sampler.run(), name="ksm-cost-sampler")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(sampling)
    app[COLLECTION_KEY] = collection
    app[SCRAPE_KEY] = SingleFlight(scrape_once)
    landing = LANDING.format(path=html.escape(telemetry_path, quote=True))

    async def metrics(request: web.Request) -> web.Response:
        exposition = await request.app[SCRAPE_KEY]()
        body, content_type, gzipped = exposition.render(
            request.headers.get(hdrs.ACCEPT, ""), request.headers.get(hdrs.ACCEPT_ENCODING, "")
        )
        response = web.Response(body=body, headers={hdrs.CONTENT_TYPE: content_type})
        if gzipped:
            response.headers[hdrs.CONTENT_ENCODING] = "gzip"
        return response

    async def index(_: web.Request) -> web.Response:
        return web.Response(text=landing, content_type="text/html")

    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="OK\n")

    app.router.add_get(telemetry_path, metrics)
    app.router.add_get("/", index)
    app.router.add_get("/-/healthy", ok)
    app.router.add_get("/-/ready", ok)
    return app

"""Serving the application until SIGTERM or SIGINT, saying where it listens once bound."""

from __future__ import annotations

import asyncio
import logging
import ssl

from aiohttp import web

log = logging.getLogger("ksm_exporter")


def bound_address(sockname: object) -> str:
    """host:port of a bound socket, IPv6 in brackets: what `--web.listen-address` accepts."""
    assert isinstance(sockname, tuple)
    host, port = sockname[0], sockname[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def run(
    app: web.Application,
    *,
    host: str | None,
    port: int,
    ssl_context: ssl.SSLContext | None,
    idle_timeout: float,
    loop: asyncio.AbstractEventLoop,
) -> None:
    """Like aiohttp's `run_app`, but logs the addresses actually bound (port 0 picks one).

    Raises OSError when the address cannot be bound.
    """
    asyncio.set_event_loop(loop)
    # handle_signals: SIGTERM and SIGINT raise GracefulExit out of run_forever.
    runner = web.AppRunner(
        app, handle_signals=True, access_log=None, keepalive_timeout=idle_timeout
    )
    try:
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
        loop.run_until_complete(site.start())
        addresses = ",".join(bound_address(a) for a in runner.addresses)
        log.info("listening", extra={"address": addresses})
        loop.run_forever()
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        loop.run_until_complete(runner.cleanup())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

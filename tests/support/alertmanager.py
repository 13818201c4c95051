"""Debian's Alertmanager on 127.0.0.1, and a webhook receiver the test runs, so that a test
follows an alert from Prometheus to the notification a person would get.

    with webhook_receiver() as receiver, running_alertmanager(route_to(receiver.url)) as am:
        ...  # Prometheus with alerting to am.address
        receiver.wait_for("KsmdExcessiveCpu", "firing")
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from harness.eventually import eventually
from harness.prometheus_server import RunningServer, running_server
from harness.tools import require

Notification = dict[str, Any]


def route_to(url: str, group_wait: str = "1s", group_interval: str = "1s") -> dict[str, Any]:
    """One route: every alert to the webhook at `url`, resolved ones too, one notification
    per alert and host. The waits are short for a test; README shows the production ones."""
    return {
        "global": {"resolve_timeout": "10s"},
        "route": {
            "receiver": "ksm",
            "group_by": ["alertname", "cluster", "instance"],
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": "4h",
        },
        "receivers": [{"name": "ksm", "webhook_configs": [{"url": url, "send_resolved": True}]}],
    }


@dataclass
class RunningAlertmanager(RunningServer):
    name = "alertmanager"

    @property
    def address(self) -> str:
        return urllib.parse.urlsplit(self.url).netloc


@contextlib.contextmanager
def running_alertmanager(config: dict[str, Any]) -> Iterator[RunningAlertmanager]:
    """Debian's prometheus-alertmanager on a free port of 127.0.0.1, not clustered."""
    binary = require("prometheus-alertmanager", "prometheus-alertmanager")
    with running_server(
        RunningAlertmanager,
        binary,
        config,
        "--storage.path=data",
        "--cluster.listen-address=",  # no gossip port on every address
    ) as alertmanager:
        yield alertmanager


@dataclass
class WebhookReceiver:
    url: str
    notifications: list[Notification] = field(default_factory=list)

    def wait_for(self, alertname: str, status: str, timeout: float = 180.0) -> Notification:
        """The first notification whose status is `status` and that carries `alertname`."""

        def arrived() -> Notification | None:
            for notification in list(self.notifications):
                names = {alert["labels"].get("alertname") for alert in notification["alerts"]}
                if notification["status"] == status and alertname in names:
                    return notification
            return None

        return eventually(arrived, timeout, interval=0.2, what=f"{alertname} {status}")


@contextlib.contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """An aiohttp server on 127.0.0.1, on a thread of its own, that keeps every JSON body
    POSTed to /alerts (Alertmanager's webhook payload, version 4)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="webhook-receiver", daemon=True)
    thread.start()
    notifications: list[Notification] = []

    async def receive(request: web.Request) -> web.Response:
        notifications.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/alerts", receive)
    runner = web.AppRunner(app)

    def run(coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=10)

    try:
        run(runner.setup())
        run(web.TCPSite(runner, "127.0.0.1", 0).start())
        host, port = runner.addresses[0][:2]
        yield WebhookReceiver(f"http://{host}:{port}/alerts", notifications)
    finally:
        run(runner.cleanup())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()

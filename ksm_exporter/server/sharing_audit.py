"""The opt-in sharing collector (`--collector.sharing`): the audit of who shares KSM pages
with whom, run on a thread of its own every `--collector.sharing.interval` seconds.

An audit reads every registered process's pagemap (about a second for 4 GiB registered), so
it never runs on a scrape nor on the event loop: the thread turns each result into metric
families once, and a scrape only hands out the last ones. Without CAP_SYS_ADMIN the kernel
hides every frame: the tenant series are then left out, never reported as no sharing,
`ksm_sharing_audit_up` is 0 and one log line names the privilege.
"""

from __future__ import annotations

import logging
import threading
import time

from prometheus_client.core import GaugeMetricFamily, Metric

from ksm_exporter.audit.model import Audit, seen_of, take_audit
from ksm_exporter.collector.sharing_families import sharing_families
from ksm_exporter.derive.sharing import SharingSeen
from ksm_exporter.derive.tenants import TenantKey
from ksm_exporter.sources.roots import Roots

log = logging.getLogger(__name__)


class SharingAuditor:
    def __init__(
        self, roots: Roots, key: TenantKey, interval: float, tenants: int, pairs: int
    ) -> None:
        self.roots, self.key, self.interval = roots, key, interval
        self.tenants, self.pairs = tenants, pairs
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ksm-sharing-audit", daemon=True)
        self._lock = threading.Lock()
        self._families: list[Metric] = []
        self._status: dict[str, float] = {}
        self._said: str = ""
        self._seen: SharingSeen | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def families(self) -> list[Metric]:
        """The last audit's families and the auditor's own; cheap, for the scrape."""
        with self._lock:
            families, status = list(self._families), dict(self._status)
        if not status:
            return []  # no audit has finished yet
        return [
            *families,
            GaugeMetricFamily(
                "ksm_sharing_audit_up",
                "1 when the last sharing audit could see physical frames (root with "
                "CAP_SYS_ADMIN, /proc/kpageflags readable), else 0.",
                value=status["up"],
            ),
            GaugeMetricFamily(
                "ksm_sharing_audit_complete",
                "1 when the last sharing audit read every registered process, 0 when some "
                "could not be read (exited, not permitted).",
                value=status["complete"],
            ),
            GaugeMetricFamily(
                "ksm_sharing_audit_duration_seconds",
                "How long the last sharing audit took to read.",
                value=status["duration"],
            ),
            GaugeMetricFamily(
                "ksm_sharing_audit_timestamp_seconds",
                "When the last sharing audit finished, in seconds since the epoch.",
                value=status["finished"],
            ),
        ]

    def audit_once(self) -> None:
        try:
            result = take_audit(self.roots, self.key)
        except Exception:  # a bug must not end the thread: say it, try at the next interval
            log.exception("the sharing audit failed")
            return
        self._publish(result)

    def _publish(self, result: Audit) -> None:
        reading = result.reading
        finished = time.time()
        seen = seen_of(result, finished)
        cannot_see = seen.reason
        if cannot_see and cannot_see != self._said:
            log.warning("the sharing audit cannot see frames", extra={"reason": cannot_see})
        self._said = cannot_see
        listed: list[Metric] = []
        if not cannot_see:
            listed = list(sharing_families(result.sharing, self.key, self.tenants, self.pairs))
        status = {
            "up": 0.0 if cannot_see else 1.0,
            "complete": float(reading.complete),
            "duration": result.seconds,
            "finished": finished,
        }
        with self._lock:
            self._families, self._status, self._seen = listed, status, seen

    def seen(self) -> SharingSeen | None:
        """The last audit for the status views; None before the first has finished."""
        with self._lock:
            return self._seen

    def _run(self) -> None:
        while not self._stop.is_set():
            self.audit_once()
            self._stop.wait(self.interval)

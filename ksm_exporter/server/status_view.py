"""The status snapshot from the server's own reading: the collection /metrics was built from,
the background sampler's scan-cost figures, and the history of the last hour.

The page and /api/status take the last collection while it is younger than the sampling
interval, else share the scrape in flight (or start one), so they show the host at the moment
/metrics did. Building the snapshot reads what the other tuners count (QEMU's resident memory,
the tuners running: walks of /proc the reader keeps for a sampling interval) and rendering
walks every process shown: both run in a worker thread, never on the event loop.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, replace

from ksm_exporter.collector.collection import KsmCollection
from ksm_exporter.derive.process_selection import ProcessReading, ProcessSelection
from ksm_exporter.derive.scan_cost import ScanCost
from ksm_exporter.derive.sharing import SharingSeen
from ksm_exporter.reading.host_reader import HostReading
from ksm_exporter.sources.host import ScanReading
from ksm_exporter.sources.process_sweep import ProcessSweep
from ksm_exporter.status.build import build_status
from ksm_exporter.status.history import History, Point
from ksm_exporter.status.model import View
from ksm_exporter.status.page import PageContext, page, unavailable_page
from ksm_exporter.status.render import render_json
from ksm_exporter.status.snapshot import CpuWindow, Snapshot, build_snapshot, no_ksm_sentence

TOP = 10  # processes shown, as `status` shows by default
NO_PROCESSES = ProcessReading(ProcessSweep(), ProcessSelection((), ()))


@dataclass(frozen=True, slots=True)
class ServerReading:
    """Taken on the event loop, then used in a worker thread: nothing here changes later."""

    host: HostReading  # the latest collection's
    cost: ScanCost  # the sampler's figures
    first: ScanReading  # the tick before the sampler's latest: the window of ksmd's CPU share
    history: tuple[Point, ...]
    taken_at: float  # Unix time
    sharing: SharingSeen | None = None  # the sharing collector's last audit, where it runs


def reading_now(
    collection: KsmCollection, history: History, sharing: SharingSeen | None = None
) -> ServerReading | None:
    """None before the first collection."""
    reader = collection.reader
    host = reader.last
    if host is None:
        return None
    cost = reader.sampler.cost
    first = history.previous if history.latest is cost.last else None
    start = first or cost.last or ScanReading(reader.clock(), None)
    points = history.points(reader.clock())
    return ServerReading(host, cost, start, points, time.time(), sharing)


def snapshot_of(collection: KsmCollection, reading: ServerReading) -> Snapshot:
    """`status`'s document from the server's reading; with the sweep off, no processes."""
    host = replace(reading.host, processes=top_processes(reading.host.processes, TOP))
    window = CpuWindow(reading.first, reading.cost)
    snapshot = replace(
        build_snapshot(collection.reader, collection.tuning, host, window), sharing=reading.sharing
    )
    return snapshot if reading.host.processes else replace(snapshot, processes=None)


def top_processes(sample: ProcessReading | None, top: int) -> ProcessReading:
    if sample is None:
        return NO_PROCESSES
    own = sample.selection.own
    selection = ProcessSelection(own[:top], (*own[top:], *sample.selection.other))
    return replace(sample, selection=selection)


def unavailable(collection: KsmCollection, host: HostReading) -> str | None:
    """The sentence `status` exits with where KSM cannot be read, else None."""
    sysfs = host.sysfs
    if sysfs.snapshot.available:
        return None
    return no_ksm_sentence(collection.reader.roots.sysfs, sysfs.problems)


def html_page(collection: KsmCollection, reading: ServerReading, telemetry_path: str) -> str:
    context = PageContext(host_name(), telemetry_path, reading.taken_at)
    sentence = unavailable(collection, reading.host)
    if sentence is not None:
        return unavailable_page(sentence, context)
    status = build_status(snapshot_of(collection, reading), View.SERVER)
    return page(status, reading.history, context)


def json_document(collection: KsmCollection, reading: ServerReading) -> tuple[int, str]:
    """(HTTP status, body): `status --json`'s document, or where KSM cannot be read 503 and
    the sentence `status` exits with."""
    sentence = unavailable(collection, reading.host)
    if sentence is not None:
        return 503, json.dumps({"error": sentence}) + "\n"
    return 200, render_json(build_status(snapshot_of(collection, reading), View.SERVER))


def host_name() -> str:
    return os.uname().nodename

"""The processes and VMs that merge little, beside the rest of `status`: the same list in the
terminal, in `status --json` and `/api/status`, and on the page, each with its reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pytest_aiohttp import AiohttpClient

from harness.paths import fixture_roots
from ksm_exporter.collector.collection import KsmCollection
from ksm_exporter.reading.host_reader import HostReader
from ksm_exporter.server.app import make_app
from ksm_exporter.status.build import build_status
from ksm_exporter.status.render import render_json, render_text
from ksm_exporter.status.snapshot import take_snapshot
from tests.support.sampling import CLOCK_TICKS

pytestmark = pytest.mark.unit

PAGE_SIZE = 4096


def merging_little_in_fixture(procfs: Path) -> set[int]:
    """Registered processes of the tree whose ksm_stat shows fewer than 1 in 20 of their
    rmap items merged, read from the files themselves."""
    found = set()
    for stat in procfs.glob("[0-9]*/ksm_stat"):
        if not stat.is_file():  # the fixture's broken entries
            continue
        lines = dict(line.split()[:2] for line in stat.read_text().splitlines() if line)
        try:  # a garbled file is a problem the exporter lists, not a process
            rmap, merging = int(lines["ksm_rmap_items"]), int(lines["ksm_merging_pages"])
        except (KeyError, ValueError):
            continue
        registered = lines.get("ksm_mergeable:") == "yes" or rmap or merging
        if registered and (merging * 20 < rmap or rmap == 0):
            found.add(int(stat.parent.name))
    return found


def test_status_lists_each_process_that_merges_little_with_its_reason() -> None:
    roots = fixture_roots("current")
    expected = merging_little_in_fixture(Path(roots.procfs))
    assert expected  # the fixture has some
    snapshot = take_snapshot(
        roots, 0.1, 10, sleep=lambda _: None, page_size=PAGE_SIZE, clock_ticks=CLOCK_TICKS
    )
    status = build_status(snapshot)
    listed = json.loads(render_json(status))["why"]
    assert {entry["pid"] for entry in listed} == expected
    text = render_text(status)
    for entry in listed:
        assert entry["reason"] in text
        assert f"pid {entry['pid']}" in text


async def test_the_page_and_the_api_carry_the_same_list(aiohttp_client: AiohttpClient) -> None:
    roots = fixture_roots("current")
    client = await aiohttp_client(make_app(KsmCollection(HostReader(roots, PAGE_SIZE)), "/metrics"))
    served = (await (await client.get("/api/status")).json())["why"]
    html = await (await client.get("/")).text()
    # The server explains the processes with series of their own: in the fixture, all of them.
    assert {entry["pid"] for entry in served} == merging_little_in_fixture(Path(roots.procfs))
    for entry in served:
        assert f"pid {entry['pid']}" in html
        assert entry["reason"] in html

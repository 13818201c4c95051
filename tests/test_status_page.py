"""The status view at `/`: its history, its charts, the page itself, and how it is served."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from harness.paths import fixture_roots
from ksm_exporter.collector.collection import KsmCollection
from ksm_exporter.reading.host_reader import HostReader
from ksm_exporter.server.app import make_app
from ksm_exporter.server.basic_auth import BasicAuth
from ksm_exporter.sources.host import ScanReading
from ksm_exporter.sources.roots import Roots
from ksm_exporter.sources.sysfs import KsmSysfs
from ksm_exporter.status.build import build_status
from ksm_exporter.status.chart import line_chart, nice_ceiling, segments
from ksm_exporter.status.history import History
from ksm_exporter.status.page import CONTENT_SECURITY_POLICY, PageContext, page
from ksm_exporter.status.render import render_json
from ksm_exporter.status.snapshot import take_snapshot
from tests.support.hostile_names import IMG_GUEST, SCRIPT_CGROUP, SVG_COMM, add_hostile_processes
from tests.support.sampling import CLOCK_TICKS, copy_fixture, run_tuners

pytestmark = pytest.mark.unit

PAGE_SIZE = 4096
# bcrypt of "secret" at cost 4, so the test stays fast
SECRET_HASH = "$2b$04$.p2SSP64jD.iWuNtHItbu.abIycbmw4aC7DxetpW8OUQYUEV41IZq"


def tick(at: float, pages_sharing: int | None, cpu_ns: int | None) -> ScanReading:
    ksm = KsmSysfs(True, full_scans=1, run=1, ksm_zero_pages=0)
    if pages_sharing is not None:
        ksm.values["pages_sharing"] = pages_sharing
    return ScanReading(at, 1, run=1, ksmd_pid=37, ksmd_cpu_ns=cpu_ns, ksm=ksm)


def test_history_keeps_a_point_a_step_and_forgets_the_oldest() -> None:
    history = History(PAGE_SIZE, size=3, step=10)
    for second in range(0, 51):  # one tick a second; ksmd uses a quarter of a CPU
        history.observe(tick(second, 100 * second, 250_000_000 * second))
    points = history.points(now=50)
    assert [p.age_seconds for p in points] == [20, 10, 0]  # kept at 30, 40, 50
    assert [p.saved_bytes for p in points] == [3000 * PAGE_SIZE, 4000 * PAGE_SIZE, 5000 * PAGE_SIZE]
    assert [p.ksmd_cpu_ratio for p in points] == [0.25, 0.25, 0.25]
    assert history.latest is not None
    assert history.latest.at == 50
    assert history.previous is not None
    assert history.previous.at == 49


def test_history_leaves_unknown_figures_unknown() -> None:
    history = History(PAGE_SIZE, size=4, step=10)
    history.observe(tick(0, None, None))
    history.observe(tick(10, 500, 1_000))
    first, second = history.points(now=10)
    assert first.saved_bytes is None
    assert first.ksmd_cpu_ratio is None
    assert second.saved_bytes == 500 * PAGE_SIZE
    assert second.ksmd_cpu_ratio is None  # no CPU time at the point before


def test_chart_breaks_its_line_at_gaps_and_unknown_values() -> None:
    series = [(100.0, 1.0), (90.0, 2.0), (80.0, None), (70.0, 3.0), (10.0, 4.0), (0.0, 5.0)]
    assert segments(series, span=3600, gap=25) == [
        [(100.0, 1.0), (90.0, 2.0)],
        [(70.0, 3.0)],
        [(10.0, 4.0), (0.0, 5.0)],
    ]
    svg = line_chart(series, title="t", top=5, label=str, span=3600, gap=25)
    assert svg.count("<polyline") == 2
    assert svg.count("<circle") == 1
    assert "no data yet" in line_chart([], title="t", top=1, label=str, span=3600, gap=25)


@pytest.mark.parametrize(("value", "top"), [(0.0, 1.0), (0.013, 0.02), (3.0, 5.0), (250, 250)])
def test_nice_ceiling(value: float, top: float) -> None:
    assert nice_ceiling(value) == pytest.approx(top)


class Elements(HTMLParser):
    """Every element the HTML parser builds, with its attributes, and the text between."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(html: str) -> Elements:
    elements = Elements()
    elements.feed(html)
    return elements


def hostile_page(tmp_path: Path) -> str:
    roots = copy_fixture("current", tmp_path)
    add_hostile_processes(roots)
    snapshot = take_snapshot(
        roots, 0.1, 10, sleep=lambda _: None, page_size=PAGE_SIZE, clock_ticks=CLOCK_TICKS
    )
    return page(build_status(snapshot), (), PageContext("<b>host</b>", "/metrics", 0.0))


def test_names_from_the_host_are_text_never_markup(tmp_path: Path) -> None:
    elements = parsed(hostile_page(tmp_path))
    tags = {tag for tag, _ in elements.elements}
    assert not tags & {"img", "script", "b"}
    assert [tag for tag, _ in elements.elements].count("svg") == 2  # the two charts
    assert not [a for _, attrs in elements.elements for a in attrs if a.startswith("on")]
    text = "".join(elements.text)
    for name in (SVG_COMM, f"vm {IMG_GUEST}", SCRIPT_CGROUP, "KSM on <b>host</b>"):
        assert name in text


def test_the_style_sheet_is_the_one_the_policy_allows(tmp_path: Path) -> None:
    html = hostile_page(tmp_path)
    styles = re.findall(r"<style>(.*?)</style>", html, re.DOTALL)
    assert len(styles) == 1
    digest = base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode()
    assert f"'sha256-{digest}'" in CONTENT_SECURITY_POLICY
    assert "<script" not in html
    assert " style=" not in html


async def client_for(
    aiohttp_client: AiohttpClient, roots: Roots, auth: BasicAuth | None = None
) -> TestClient:  # type: ignore[type-arg]
    return await aiohttp_client(
        make_app(KsmCollection(HostReader(roots, PAGE_SIZE)), "/metrics", auth)
    )


async def test_page_is_served_with_its_policy(aiohttp_client: AiohttpClient) -> None:
    client = await client_for(aiohttp_client, fixture_roots("current"))
    response = await client.get("/")
    assert response.status == 200
    assert response.content_type == "text/html"
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    html = await response.text()
    for link in ('href="/metrics"', 'href="/-/healthy"', 'href="/-/ready"', 'href="/api/status"'):
        assert link in html
    assert "118.2 MiB" in html  # (pages_sharing 30000 + ksm_zero_pages 250) * 4096
    metrics = await client.get("/metrics")
    assert metrics.headers["X-Content-Type-Options"] == "nosniff"
    assert metrics.headers["Content-Security-Policy"].startswith("default-src 'none'")


async def test_api_status_is_the_status_json(aiohttp_client: AiohttpClient) -> None:
    roots = fixture_roots("current")
    client = await client_for(aiohttp_client, roots)
    response = await client.get("/api/status")
    assert response.status == 200
    assert response.content_type == "application/json"
    served = await response.json()
    printed = json.loads(
        render_json(
            build_status(take_snapshot(roots, 0.1, 10, sleep=lambda _: None, page_size=PAGE_SIZE))
        )
    )
    assert served.keys() == printed.keys()
    for part in ("ksm", "memory", "problems"):
        assert served[part] == printed[part]
    assert served["processes"]["top"] == printed["processes"]["top"]
    assert served["advice"].keys() == printed["advice"].keys()


async def test_no_ksm_page_says_why(aiohttp_client: AiohttpClient, tmp_path: Path) -> None:
    client = await client_for(aiohttp_client, Roots(str(tmp_path), str(tmp_path)))
    page_response = await client.get("/")
    assert page_response.status == 200
    assert "this kernel has no KSM" in await page_response.text()
    api = await client.get("/api/status")
    assert api.status == 503
    assert "this kernel has no KSM" in (await api.json())["error"]


async def test_basic_auth_guards_the_page_and_its_json(aiohttp_client: AiohttpClient) -> None:
    auth = BasicAuth({"ops": SECRET_HASH})
    client = await client_for(aiohttp_client, fixture_roots("current"), auth)
    for path in ("/", "/api/status"):
        denied = await client.get(path)
        assert denied.status == 401
        assert denied.headers["X-Content-Type-Options"] == "nosniff"
        allowed = await client.get(path, headers={"Authorization": "Basic b3BzOnNlY3JldA=="})
        assert allowed.status == 200


async def test_the_page_and_its_json_show_each_other_tuner_that_runs_here(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    roots = copy_fixture("current", tmp_path)
    pids = run_tuners(roots, "ksmtuned", "momd", "virt-handler")
    # libvirt's QEMU (pid 1201) with 14 GiB of address space: MOM, which counts virtual size,
    # starts KSM on this 16,384,000 kB host; ksmtuned, which counts resident size, does not.
    (Path(roots.procfs) / "1201" / "status").write_text(
        "Name:\tqemu-system-x86\nVmSize:\t14680064 kB\nVmRSS:\t1048576 kB\n"
    )
    client = await client_for(aiohttp_client, roots)
    html = await (await client.get("/")).text()
    text = " ".join(parsed(html).text)
    for name, pid, setting in (
        ("ksmtuned", pids["ksmtuned"], "stops KSM (run=0)"),
        ("oVirt MOM", pids["momd"], "sets pages_to_scan=950, sleep_millisecs=10"),
        ("KubeVirt", pids["virt-handler"], "sets pages_to_scan=950, sleep_millisecs=382"),
    ):
        assert f"{name} runs here (pid {pid}): {setting}" in text
    served = (await (await client.get("/api/status")).json())["advice"]["others"]
    printed = json.loads(
        render_json(
            build_status(take_snapshot(roots, 0.1, 10, sleep=lambda _: None, page_size=PAGE_SIZE))
        )
    )["advice"]["others"]
    assert list(served) == ["ksmtuned", "mom", "kubevirt", "kernel_advisor"]
    for key in ("ksmtuned", "mom", "kubevirt"):
        assert {**served[key], "predicted": None} == {**printed[key], "predicted": None}

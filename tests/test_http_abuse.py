"""Abusive and broken HTTP clients against the real exporter: each gets a 4xx or is cut off,
and a normal scraper keeps getting its metrics meanwhile."""

from __future__ import annotations

import contextlib
import resource
import selectors
import socket
import time
from collections.abc import Iterator

import pytest

from harness.eventually import eventually
from harness.exporter_process import RunningExporter, running_exporter
from harness.exposition import parse_samples, value
from harness.paths import fixture_roots

pytestmark = pytest.mark.e2e

IDLE_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def exporter() -> Iterator[RunningExporter]:
    roots = fixture_roots("current")
    with running_exporter(
        f"--path.sysfs={roots.sysfs}",
        f"--path.procfs={roots.procfs}",
        f"--web.idle-timeout={IDLE_TIMEOUT}",
    ) as running:
        yield running


def port_of(exporter: RunningExporter) -> int:
    return int(exporter.url.rsplit(":", 1)[1])


@contextlib.contextmanager
def raw_connection(exporter: RunningExporter) -> Iterator[socket.socket]:
    with socket.create_connection(("127.0.0.1", port_of(exporter)), timeout=10) as conn:
        yield conn


def exchange(exporter: RunningExporter, request: bytes) -> bytes:
    """Send `request` whole and return the status line of the answer."""
    with raw_connection(exporter) as conn:
        conn.sendall(request)
        answer = b""
        while b"\r\n" not in answer:
            chunk = conn.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.split(b"\r\n", 1)[0]


def scrape_ok(exporter: RunningExporter) -> None:
    samples = parse_samples(exporter.get(timeout=5))
    assert value(samples, "ksm_pages_sharing") == 30000


def closed_after(conn: socket.socket, limit: float) -> tuple[float, bytes]:
    """Seconds until the server closed `conn`, and anything it sent first."""
    started = time.monotonic()
    conn.settimeout(limit)
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := conn.recv(4096):
            received += chunk
    return time.monotonic() - started, received


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 10000 + b"\r\n\r\n", 400),
        (
            b"GET /metrics HTTP/1.1\r\n"
            + b"".join(b"X-%d: 1\r\n" % i for i in range(300))
            + b"\r\n",
            400,
        ),
        (b"GET /" + b"m" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"BREW /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"PATCH /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (b"DELETE / HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        (b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", 404),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http at all\r\n\r\n", 400),
        (b"GET /metrics HTTP/9.9\r\nHost: x\r\n\r\n", 400),
    ],
    ids=[
        "header-value-10k",
        "300-headers",
        "request-line-9k",
        "unknown-method",
        "patch",
        "delete",
        "unknown-path",
        "path-traversal",
        "tls-hello-on-plain-http",
        "bad-version",
    ],
)
def test_bad_requests_get_a_4xx(
    exporter: RunningExporter, request_bytes: bytes, status: int
) -> None:
    status_line = exchange(exporter, request_bytes)
    assert status_line.split(b" ")[1] == b"%d" % status, status_line
    scrape_ok(exporter)


def test_a_client_sending_one_byte_a_second_is_cut_off(exporter: RunningExporter) -> None:
    with raw_connection(exporter) as slow:
        slow.sendall(b"GET /metrics HTTP/1.1\r\n")
        started = time.monotonic()
        cut_off = False
        for byte in b"Host: 127.0.0.1\r\nUser-Agent: slowloris\r\n":
            scrape_ok(exporter)  # others are served while the slow client dribbles
            time.sleep(max(0.0, 1.0 - (time.monotonic() - started) % 1.0))
            try:
                slow.sendall(bytes([byte]))
                closed = slow.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
            except (BrokenPipeError, ConnectionResetError):
                closed = True  # the server may reset rather than close: both cut it off
            if closed:
                cut_off = True
                break
        waited = time.monotonic() - started
    assert cut_off
    assert IDLE_TIMEOUT <= waited <= IDLE_TIMEOUT + 3


def test_two_hundred_idle_connections_time_out_while_scrapes_go_on(
    exporter: RunningExporter,
) -> None:
    connections = [
        socket.create_connection(("127.0.0.1", port_of(exporter)), timeout=10) for _ in range(200)
    ]
    try:
        started = time.monotonic()
        for _ in range(10):
            scrape_ok(exporter)
        selector = selectors.DefaultSelector()
        for conn in connections:
            conn.setblocking(False)
            selector.register(conn, selectors.EVENT_READ)
        closed = 0

        def all_closed() -> bool:
            nonlocal closed
            for key, _events in selector.select(timeout=0.5):
                ready = key.fileobj
                assert isinstance(ready, socket.socket)
                try:
                    data = ready.recv(4096)
                except ConnectionResetError:
                    data = b""
                if data:
                    raise ValueError(f"an idle connection got an answer to no request: {data!r}")
                selector.unregister(ready)
                closed += 1
            return closed == len(connections)

        remaining = started + IDLE_TIMEOUT + 5 - time.monotonic()
        eventually(all_closed, remaining, interval=0, what="every idle connection closed")
        elapsed = time.monotonic() - started
        assert elapsed >= IDLE_TIMEOUT
        scrape_ok(exporter)
    finally:
        for conn in connections:
            conn.close()


def test_keep_alive_connections_serve_scrapes_within_the_idle_timeout(
    exporter: RunningExporter,
) -> None:
    request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
    with raw_connection(exporter) as conn:
        for _ in range(3):
            conn.sendall(request)
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(65536)
            assert head.startswith(b"HTTP/1.1 200")
            length = int(head.split(b"Content-Length: ", 1)[1].split(b"\r\n", 1)[0])
            body = head.split(b"\r\n\r\n", 1)[1]
            while len(body) < length:
                body += conn.recv(65536)
            time.sleep(IDLE_TIMEOUT / 3)
        waited, sent = closed_after(conn, IDLE_TIMEOUT + 5)
    assert sent == b""
    assert waited <= IDLE_TIMEOUT + 3


def test_the_open_files_limit_is_raised_to_the_hard_limit() -> None:
    from ksm_exporter.server.limits import raise_open_files_limit  # noqa: PLC0415

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= 256:
        pytest.skip(f"hard limit {hard} leaves nothing to raise")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        assert raise_open_files_limit() == hard
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

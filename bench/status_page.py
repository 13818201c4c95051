"""Does the status view slow /metrics? Scrape p50 with the page polled every second, against
without, in the same run on one exporter; the page's weight; the history's memory.

    python -m bench.status_page [--scrapes N]
"""

from __future__ import annotations

import argparse
import http.client
import math
import statistics
import threading
import time
import tracemalloc

from bench.peers import Server, ksm_exporter, machine
from ksm_exporter.sources.host import ScanReading
from ksm_exporter.sources.sysfs import KsmSysfs
from ksm_exporter.status.history import POINTS, History


def get(connection: http.client.HTTPConnection, path: str) -> bytes:
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    if response.status != 200:
        raise SystemExit(f"{path} answered {response.status}")
    return body


def scrape_p50_ms(server: Server, scrapes: int) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    times = []
    for _ in range(scrapes):
        started = time.perf_counter()
        get(connection, "/metrics")
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def poll_page(server: Server, stop: threading.Event, weights: list[int]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    while not stop.wait(1.0):
        weights.append(len(get(connection, "/")))


def history_bytes() -> int:
    """What a full history holds, as tracemalloc counts it."""
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    history = History(4096)
    for second in range(0, 10 * POINTS + 10, 10):
        ksm = KsmSysfs(True, pages_sharing=second, ksm_zero_pages=0)
        history.observe(ScanReading(float(second), 1, 1, 37, second * 10**6, ksm))
    history.latest = history.previous = None  # the points only
    grown = tracemalloc.take_snapshot().compare_to(before, "filename")
    tracemalloc.stop()
    return sum(stat.size_diff for stat in grown if stat.size_diff > 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scrapes", type=int, default=1000, help="scrapes in each half")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with ksm_exporter("--collector.process") as server:
        scrape_p50_ms(server, 50)  # warm up
        alone = scrape_p50_ms(server, args.scrapes)
        stop, weights = threading.Event(), []  # type: ignore[var-annotated]
        poller = threading.Thread(target=poll_page, args=(server, stop, weights))
        poller.start()
        try:
            polled = scrape_p50_ms(server, args.scrapes)
        finally:
            stop.set()
            poller.join()
        alone_again = scrape_p50_ms(server, args.scrapes)
    without = (alone + alone_again) / 2
    print(f"scrape p50 without the page: {alone:.3f} ms, {alone_again:.3f} ms (after)")
    print(f"scrape p50 with / polled every second ({len(weights)} loads): {polled:.3f} ms")
    print(f"ratio with/without: {polled / without:.2f}x")
    if weights:
        print(f"page weight: {max(weights)} bytes at most (target < 100 KB)")
    held = history_bytes()
    print(f"history: {POINTS} points, {held} bytes ({math.ceil(held / 1024)} KiB)")


if __name__ == "__main__":
    main()

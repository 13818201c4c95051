"""What a status view costs beside a scrape, and does it slow /metrics?

First, on a host with `--processes` extra idle processes: the wall time and the exporter's CPU
of a /metrics scrape, of a view of `/` and of `/api/status`, each measured alone, back to back
(`--requests` each: reloads and viewers within one sampling interval) and cold (`--cold`
each, one a sampling interval after the last request: a lone viewer). The goal: a view within
1.5x a scrape.
Then, without the extra processes: scrape p50 with the page polled every second, against
without, in the same run on one exporter; the page's weight; the history's memory.

    python -m bench.status_page [--processes N] [--requests N] [--cold N] [--scrapes N]
"""

from __future__ import annotations

import argparse
import http.client
import math
import os
import statistics
import threading
import time
import tracemalloc
from dataclasses import dataclass

from bench.idle_processes import idle_processes
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


VIEWED = ("/metrics", "/", "/api/status")
SAMPLE_INTERVAL = 1.0  # the exporter's default --collector.sample-interval


def cpu_seconds(pid: int) -> float:
    """The process's CPU time, every thread's, from each one's schedstat (nanoseconds)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as schedstat:
                total += int(schedstat.read().split()[0])
        except (OSError, ValueError):  # a worker thread that just ended
            continue
    return total / 1e9


@dataclass(frozen=True)
class Cost:
    """Of one request: median wall time, and the exporter's mean CPU time."""

    wall_ms: float
    cpu_ms: float


def request_cost(server: Server, path: str, count: int, pause: float = 0.0) -> Cost:
    """`count` GETs of `path` on one keep-alive connection, `pause` seconds apart."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    times, cpu = [], 0.0
    for _ in range(count):
        time.sleep(pause)
        before = cpu_seconds(server.process.pid)
        started = time.perf_counter()
        get(connection, path)
        times.append(time.perf_counter() - started)
        cpu += cpu_seconds(server.process.pid) - before
    return Cost(statistics.median(times) * 1000, cpu / count * 1000)


def view_against_scrape(processes: int, requests: int, cold: int) -> None:
    with idle_processes(processes), ksm_exporter("--collector.process") as server:
        for path in VIEWED:  # warm up: imports, first collection, the sampler's first ticks
            request_cost(server, path, 5)
        print(f"{processes} extra idle processes; {os.cpu_count()} CPUs")
        print(f"{'':12} {'back to back':>24} {'cold (one a ' + str(SAMPLE_INTERVAL) + ' s)':>26}")
        print(f"{'':12} {'wall ms':>11} {'CPU ms':>12} {'wall ms':>12} {'CPU ms':>12}")
        costs = {}
        for path in VIEWED:
            warm = request_cost(server, path, requests)
            lone = request_cost(server, path, cold, pause=SAMPLE_INTERVAL * 1.1)
            costs[path] = (warm, lone)
            print(
                f"{path:12} {warm.wall_ms:11.2f} {warm.cpu_ms:12.2f}"
                f" {lone.wall_ms:12.2f} {lone.cpu_ms:12.2f}"
            )
        scrape_warm, scrape_cold = costs["/metrics"]
        for path in VIEWED[1:]:
            warm, lone = costs[path]
            print(
                f"{path} against a scrape: back to back {warm.wall_ms / scrape_warm.wall_ms:.2f}x"
                f" wall, {warm.cpu_ms / scrape_warm.cpu_ms:.2f}x CPU;"
                f" cold {lone.wall_ms / scrape_cold.wall_ms:.2f}x wall,"
                f" {lone.cpu_ms / scrape_cold.cpu_ms:.2f}x CPU (goal: within 1.5x)"
            )


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
    parser.add_argument("--processes", type=int, default=1500, help="extra idle processes")
    parser.add_argument("--requests", type=int, default=200, help="back to back, each path")
    parser.add_argument("--cold", type=int, default=10, help="cold requests, each path")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    view_against_scrape(args.processes, args.requests, args.cold)
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

"""Scrape latency and throughput of ksm-exporter against node_exporter's ksmd collector.

Both servers run at once on 127.0.0.1, ours with the per-process sweep off. Sequential:
one keep-alive client alternates requests between them, and a third server, ours with
the sweep on, and times each one. Concurrent: Debian's `wrk` with 16 connections
against each in turn. Prints p50/p99, requests per second and the ratios (ours / theirs).

    python -m bench.scrape_latency [--requests N] [--seconds S] [--rounds R]
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import statistics
import subprocess
import time
from contextlib import ExitStack
from dataclasses import dataclass

from bench.peers import Server, ksm_exporter, machine, node_exporter


@dataclass
class Latency:
    p50_ms: float
    p99_ms: float


def percentile_ms(seconds: list[float], pct: int) -> float:
    return statistics.quantiles(seconds, n=100, method="inclusive")[pct - 1] * 1000


class KeepAliveClient:
    def __init__(self, server: Server) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)

    def scrape(self) -> float:
        started = time.perf_counter()
        self.connection.request("GET", "/metrics")
        response = self.connection.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200 or not body:
            raise SystemExit(f"scrape failed: {response.status}")
        return elapsed


def sequential(servers: list[Server], requests: int, warmup: int) -> dict[str, Latency]:
    clients = [KeepAliveClient(server) for server in servers]
    timings: dict[str, list[float]] = {server.name: [] for server in servers}
    for i in range(warmup + requests):
        for server, client in zip(servers, clients, strict=True):
            elapsed = client.scrape()
            if i >= warmup:
                timings[server.name].append(elapsed)
    return {
        name: Latency(percentile_ms(times, 50), percentile_ms(times, 99))
        for name, times in timings.items()
    }


@dataclass
class Load:
    requests_per_second: float
    p50_ms: float
    p99_ms: float


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _wrk_latency_ms(output: str, pct: str) -> float:
    match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    if match is None:
        raise SystemExit(f"no {pct}% latency in wrk output:\n{output}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def wrk(server: Server, connections: int, seconds: int) -> Load:
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", server.url]
    output = subprocess.run(
        argv, capture_output=True, text=True, check=True, timeout=seconds + 30
    ).stdout
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    if rate is None or "Non-2xx" in output or "Socket errors" in output:
        raise SystemExit(f"wrk against {server.name} went wrong:\n{output}")
    return Load(float(rate.group(1)), _wrk_latency_ms(output, "50"), _wrk_latency_ms(output, "99"))


def concurrent(
    servers: list[Server], connections: int, seconds: int, rounds: int
) -> dict[str, Load]:
    """Rounds alternate between the servers; each figure is the median over the rounds."""
    loads: dict[str, list[Load]] = {server.name: [] for server in servers}
    for _ in range(rounds):
        for server in servers:
            loads[server.name].append(wrk(server, connections, seconds))
    return {
        name: Load(
            statistics.median(load.requests_per_second for load in runs),
            statistics.median(load.p50_ms for load in runs),
            statistics.median(load.p99_ms for load in runs),
        )
        for name, runs in loads.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="sequential scrapes each")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per round")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk")

    print(f"machine: {machine()}")
    with ExitStack() as stack:
        ours = stack.enter_context(ksm_exporter("--no-collector.process"))
        theirs = stack.enter_context(node_exporter())
        sweeping = stack.enter_context(ksm_exporter("--collector.process"))
        sweeping.name = "ksm-exporter with per-process sweep"
        servers = [ours, theirs]
        seq = sequential([*servers, sweeping], args.requests, args.warmup)
        print(f"sequential, {args.requests} scrapes each, alternating:")
        for name, lat in seq.items():
            print(f"  {name:14} p50 {lat.p50_ms:6.3f} ms  p99 {lat.p99_ms:6.3f} ms")
        processes = sum(1 for entry in os.listdir("/proc") if entry.isdigit())
        extra = seq[sweeping.name].p50_ms - seq[ours.name].p50_ms
        print(f"  per-process sweep over {processes} processes adds {extra:.3f} ms at p50")
        ratio_p50 = seq[ours.name].p50_ms / seq[theirs.name].p50_ms
        ratio_p99 = seq[ours.name].p99_ms / seq[theirs.name].p99_ms
        print(f"  ratio ours/node_exporter: p50 {ratio_p50:.2f}x  p99 {ratio_p99:.2f}x")

        load = concurrent(servers, args.connections, args.seconds, args.rounds)
        print(f"wrk -t2 -c{args.connections} -d{args.seconds}s, {args.rounds} round(s) each:")
        for name, figures in load.items():
            print(
                f"  {name:14} {figures.requests_per_second:8.0f} req/s"
                f"  p50 {figures.p50_ms:6.3f} ms  p99 {figures.p99_ms:6.3f} ms"
            )
        ratio_rps = load[ours.name].requests_per_second / load[theirs.name].requests_per_second
        print(f"  ratio ours/node_exporter: throughput {ratio_rps:.2f}x")
        print(
            f"targets: sequential p50 <= 1.00x: {'met' if ratio_p50 <= 1.0 else 'MISSED'};"
            f" throughput >= 1.00x: {'met' if ratio_rps >= 1.0 else 'MISSED'}"
        )


if __name__ == "__main__":
    main()

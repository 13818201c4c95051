"""Resident memory of ksm-exporter after start and after many scrapes, against node_exporter.

Resident set (RSS) counts shared library pages too; PSS and USS (private pages only) are
printed beside it.

Extra idle processes (`sleep` children that die with the script) make the host look busy, so a
per-process sweep has real work on every scrape. Both exporters are scraped in turn by one
keep-alive client each; memory is read from /proc/<pid>/smaps_rollup.

    python -m bench.footprint [--processes N] [--scrapes N]
"""

from __future__ import annotations

import argparse
import http.client
import os
import time
from contextlib import ExitStack

from bench.idle_processes import idle_processes
from bench.peers import Server, ksm_exporter, machine, node_exporter

# Bounded and flat: at most this much resident after the scrapes, and less growth than this.
TARGET_RSS_MIB = 60.0
TARGET_GROWTH_MIB = 1.0


def scrape_many(servers: list[Server], scrapes: int) -> dict[str, float]:
    """Scrape each server `scrapes` times; returns each one's mean seconds per scrape."""
    connections = [http.client.HTTPConnection("127.0.0.1", s.port, timeout=60) for s in servers]
    spent = dict.fromkeys((s.name for s in servers), 0.0)
    for _ in range(scrapes):
        for server, connection in zip(servers, connections, strict=True):
            started = time.perf_counter()
            connection.request("GET", "/metrics")
            response = connection.getresponse()
            response.read()
            spent[server.name] += time.perf_counter() - started
            if response.status != 200:
                raise SystemExit(f"{server.name} answered {response.status}")
    return {name: seconds / scrapes for name, seconds in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2000)
    parser.add_argument("--scrapes", type=int, default=5000)
    parser.add_argument("flags", nargs="*", help="extra ksm-exporter flags")
    args = parser.parse_args()

    print(f"machine: {machine()}")
    with ExitStack() as stack:
        ours = stack.enter_context(ksm_exporter(*args.flags))
        theirs = stack.enter_context(node_exporter())
        servers = [ours, theirs]
        scrape_many(servers, 1)
        started = {s.name: s.memory() for s in servers}
        with idle_processes(args.processes):
            print(f"{args.processes} extra processes; {os.cpu_count()} CPUs")
            mean = scrape_many(servers, args.scrapes)
            after = {s.name: s.memory() for s in servers}
        print(f"memory (MiB), after start -> after {args.scrapes} scrapes:")
        for s in servers:
            before, now = started[s.name], after[s.name]
            print(
                f"  {s.name:14} RSS {before.rss:5.1f} -> {now.rss:5.1f}"
                f" ({now.rss - before.rss:+4.1f})  PSS {before.pss:5.1f} -> {now.pss:5.1f}"
                f"  USS {before.uss:5.1f} -> {now.uss:5.1f}"
                f"  mean scrape {mean[s.name] * 1000:6.3f} ms"
            )
        ratio = after[ours.name].rss / after[theirs.name].rss
        growth = after[ours.name].rss - started[ours.name].rss
        rss = after[ours.name].rss
        print(f"  RSS ratio ours/node_exporter after scrapes: {ratio:.2f}x")
        print(
            f"ksm-exporter RSS after {args.scrapes} scrapes: {rss:.1f} MiB,"
            f" growth {growth:+.1f} MiB"
        )
        print(
            f"targets: RSS at most {TARGET_RSS_MIB:.0f} MiB:"
            f" {'met' if rss <= TARGET_RSS_MIB else 'MISSED'};"
            f" growth under {TARGET_GROWTH_MIB:.0f} MiB:"
            f" {'met' if growth < TARGET_GROWTH_MIB else 'MISSED'}"
        )


if __name__ == "__main__":
    main()

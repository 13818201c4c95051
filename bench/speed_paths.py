"""Each speed path against the plain version it replaces, on this machine, in one run.

Usage: .venv/bin/python -m bench.speed_paths [--idle N]   (default 3000; from the checkout)

  sysfs:   HeldKsmSysfs (descriptors held, pread) vs read_ksm_sysfs (open/read/close each);
  encoder: server/text_encoding.py vs prometheus-client's generate_latest, on the same
           families of a full scrape (Prometheus text 0.0.4);
  sweep:   ProcessSweeper keeping each ksm_stat open vs opening afresh (keep_limit=0),
           with N idle processes started for the run, one thread each;
  meminfo: parse_sizes stopping at the five lines the exporter uses vs parsing every line.

Rounds alternate between the two sides; each line prints both medians and the ratio
(speed path / plain). A path earns its place where the ratio stays below 1.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable

from prometheus_client.exposition import generate_latest

from bench.idle_processes import idle_processes
from ksm_exporter.collector.collection import KsmCollection
from ksm_exporter.reading.host_reader import HostReader
from ksm_exporter.server import text_encoding
from ksm_exporter.server.exposition import Exposition
from ksm_exporter.sources.kernel_file import read_bytes
from ksm_exporter.sources.meminfo import WANTED, parse_sizes
from ksm_exporter.sources.process_sweep import ProcessSweeper
from ksm_exporter.sources.roots import Roots
from ksm_exporter.sources.sysfs import HeldKsmSysfs, read_ksm_sysfs

ROUNDS = 31


def alternate(
    fast: Callable[[], object], plain: Callable[[], object], inner: int
) -> tuple[float, float]:
    """Median seconds per call of each, rounds alternating between them."""
    times: dict[str, list[float]] = {"fast": [], "plain": []}
    fast(), plain()  # warm: the held files open, the caches fill
    for _ in range(ROUNDS):
        for name, call in (("fast", fast), ("plain", plain)):
            started = time.perf_counter()
            for _ in range(inner):
                call()
            times[name].append((time.perf_counter() - started) / inner)
    return statistics.median(times["fast"]), statistics.median(times["plain"])


def report(what: str, fast: float, plain: float) -> None:
    ratio = fast / plain
    verdict = "keep" if ratio < 1 else "does not earn its place"
    print(f"  {what:<8} {fast * 1e6:10.1f} us  {plain * 1e6:10.1f} us  {ratio:6.2f}x  {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=int, default=3000, help="idle processes for the sweep")
    args = parser.parse_args()
    roots = Roots()
    print(f"  {'path':<8} {'speed path':>13}  {'plain':>13}  ratio")

    held = HeldKsmSysfs(roots.sysfs)
    report("sysfs", *alternate(held.read, lambda: read_ksm_sysfs(roots.sysfs), 50))
    held.close()

    collection = KsmCollection(HostReader(roots))
    families = asyncio.run(collection.collect_async())
    collection.close()
    fmt = text_encoding.format_of(generate_latest)
    assert fmt is not None
    assert text_encoding.encode(families, fmt) == generate_latest(Exposition(families))
    report(
        "encoder",
        *alternate(
            lambda: text_encoding.encode(families, fmt),
            lambda: generate_latest(Exposition(families)),
            50,
        ),
    )

    meminfo = read_bytes(f"{roots.procfs}/meminfo") or b""
    report(
        "meminfo",
        *alternate(lambda: parse_sizes(meminfo, WANTED), lambda: parse_sizes(meminfo), 200),
    )

    with idle_processes(args.idle):
        kept = ProcessSweeper(roots.procfs, keep_limit=args.idle + 1000)
        fresh = ProcessSweeper(roots.procfs, keep_limit=0)
        report("sweep", *alternate(kept.sweep, fresh.sweep, 1))
        kept.close()
        fresh.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

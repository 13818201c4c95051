"""The per-process sweep against a plain Python loop, with N extra idle processes on the host.

Usage: .venv/bin/python -m bench.process_sweep [N ...]   (default: 1000 5000; from the checkout)

For each N it starts N idle processes, then, alternating in the same run:
  (a) baseline: one thread lists /proc and does os.open/os.read/os.close on every
      /proc/<pid>/ksm_stat, nothing else;
  (b) the exporter's sweep as a scrape runs it: every ksm_stat read and parsed, the registered
      processes selected and their comm, cmdline and cgroup read;
and prints the median of each and the ratio (b)/(a). At the largest N it also starts the
exporter and prints the median time of a whole GET /metrics. The idle processes are killed
at the end, and die with this script if it is killed. The exporter keeps each ksm_stat
open between sweeps; its first sweep, which opens them all, is printed too.
"""

from __future__ import annotations

import http.client
import os
import statistics
import sys
import time
from collections.abc import Callable

from bench.idle_processes import idle_processes
from harness.exporter_process import running_exporter
from ksm_exporter.reading.processes import ProcessOptions, ProcessReader

ROUNDS = 25
SCRAPES = 60


def baseline() -> int:
    """The naive loop: what reading every ksm_stat costs at the least in Python."""
    read = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            fd = os.open(f"/proc/{name}/ksm_stat", os.O_RDONLY)
        except OSError:
            continue
        try:
            read += len(os.read(fd, 4096))
        except OSError:
            pass
        finally:
            os.close(fd)
    return read


def timed(job: Callable[[], object]) -> float:
    started = time.perf_counter()
    job()
    return time.perf_counter() - started


def sweep_figures(collector: ProcessReader) -> tuple[float, float, float, int]:
    """Medians of (a) and (b), alternating, and (b)'s first sweep, which opens every file."""
    first = timed(collector.read)
    plain: list[float] = []
    exporter: list[float] = []
    for _ in range(ROUNDS):
        plain.append(timed(baseline))
        exporter.append(timed(collector.read))
    scanned = collector.read().sweep.scanned
    return statistics.median(plain), statistics.median(exporter), first, scanned


def scrape_median(url_port: int) -> float:
    connection = http.client.HTTPConnection("127.0.0.1", url_port, timeout=10)
    timings = []
    for i in range(SCRAPES + 5):
        started = time.perf_counter()
        connection.request("GET", "/metrics")
        response = connection.getresponse()
        response.read()
        assert response.status == 200
        if i >= 5:  # warm-up
            timings.append(time.perf_counter() - started)
    connection.close()
    return statistics.median(timings)


def main(counts: list[int]) -> None:
    print(
        f"{'N':>6} {'pids':>6} {'(a) plain loop':>15} {'(b) exporter':>13} {'(b)/(a)':>8} "
        f"{'(b) first sweep':>16}"
    )
    for count in counts:
        with idle_processes(count):
            collector = ProcessReader("/proc", ProcessOptions())
            try:
                plain, exporter, first, scanned = sweep_figures(collector)
            finally:
                collector.close()
            print(
                f"{count:>6} {scanned:>6} {plain * 1e3:>12.1f} ms {exporter * 1e3:>10.1f} ms "
                f"{exporter / plain:>8.2f} {first * 1e3:>13.1f} ms"
            )
            if count == max(counts):
                with running_exporter() as server:
                    port = int(server.url.rsplit(":", 1)[1])
                    median = scrape_median(port)
                print(f"{'':>6} whole GET /metrics, median of {SCRAPES}: {median * 1e3:.1f} ms")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000, 5000])

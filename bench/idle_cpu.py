"""CPU the exporter uses while nobody scrapes it, with and without the scan-cost sampler.

Two exporters run side by side over the same window: one with the default sample interval
(1 s) and a baseline whose sampler ticks once an hour, so the difference is the sampler's
own cost. Usage: .venv/bin/python bench/idle_cpu.py [seconds]   (default 60)
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import ExitStack

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from harness.exporter_process import running_exporter

SETTLE_SECONDS = 3.0


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rpartition(b")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    window = float(sys.argv[1]) if len(sys.argv) > 1 else 60.0
    runs = {
        "sampling every 1 s": (),
        "baseline, sampler idle": ("--collector.sample-interval=3600",),
    }
    with ExitStack() as stack:
        pids = {
            name: stack.enter_context(running_exporter(*flags)).process.pid
            for name, flags in runs.items()
        }
        time.sleep(SETTLE_SECONDS)  # start-up and the first scrape-free seconds
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        started = time.monotonic()
        time.sleep(window)
        elapsed = time.monotonic() - started
        used = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
    tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
    print(f"idle CPU over {elapsed:.1f} s, share of one core (resolution {tick_ms:g} ms):")
    for name, seconds in used.items():
        print(f"  {name:24} {seconds:6.2f} s CPU  {100 * seconds / elapsed:6.3f} %")
    extra = used["sampling every 1 s"] - used["baseline, sampler idle"]
    print(f"  sampler's own cost       {extra:6.2f} s CPU  {100 * extra / elapsed:6.3f} %")


if __name__ == "__main__":
    main()

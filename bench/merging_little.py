"""What a scrape costs when 100 registered processes merge little, against 100 that merge well,
in the same run on real KSM (root; holds the KSM lock and puts every setting back).

Usage: .venv/bin/python -m bench.merging_little [COUNT]   (default 100; from the checkout)

  (a) baseline: COUNT processes of 1 MiB of identical pages each, merged (each merges well:
      nothing beyond the sweep is read);
  (b) COUNT processes of 1 MiB of unique pages each, which ksmd has not reached at a slow
      pace (pages_to_scan 10, sleep_millisecs 1000): each merges little and is explained,
      its smaps read (cold: the explanations' kept inputs emptied before each scrape) or
      taken from what was kept (warm: a minute, as a scrape interval repeats them).
Each figure is the median of ROUNDS whole collections as the server makes them (the sweep in
a thread, every family built), timed in this process; (b) cold and warm alternate.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from harness.real_ksm import ksm_lock
from harness.why_workload import why_child
from ksm_exporter.collector.collection import KsmCollection
from ksm_exporter.reading.host_reader import HostReader, HostReading
from ksm_exporter.reading.processes import ProcessOptions
from ksm_exporter.sources.roots import Roots

KSM = Path("/sys/kernel/mm/ksm")
SAVED = ("run", "pages_to_scan", "sleep_millisecs")
ROUNDS = 30
MiB = 1 << 20


def read(name: str) -> str:
    return (KSM / name).read_text().strip()


def write(name: str, value: str | int) -> None:
    (KSM / name).write_text(str(value))


@contextlib.contextmanager
def host_ksm() -> Iterator[None]:
    with ksm_lock():
        saved = {name: read(name) for name in SAVED}
        advisor = read("advisor_mode") if (KSM / "advisor_mode").exists() else None
        if advisor is not None:
            write("advisor_mode", "none")
        try:
            yield
        finally:
            for name in ("pages_to_scan", "sleep_millisecs"):
                write(name, saved[name])
            if advisor is not None and "[scan-time]" in advisor:
                write("advisor_mode", "scan-time")
            write("run", saved["run"])


@contextlib.contextmanager
def children(count: int, content: str) -> Iterator[list[int]]:
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(why_child(MiB, content)).pid for _ in range(count)]


def merged(pids: list[int]) -> bool:
    for pid in pids:
        stat = dict(
            line.split()[:2] for line in Path(f"/proc/{pid}/ksm_stat").read_text().splitlines()
        )
        rmap = int(stat["ksm_rmap_items"])
        if rmap == 0 or int(stat["ksm_merging_pages"]) * 2 < rmap:
            return False
    return True


def registered_others(reading: HostReading | None, own: set[int]) -> set[int]:
    """Registered processes that are not this run's: ksmd and the exporter see them too."""
    if reading is None or reading.processes is None:
        return set()
    return {p.pid for p in reading.processes.sweep.registered} - own


def scrape(collection: KsmCollection) -> float:
    started = time.perf_counter()
    asyncio.run(collection.collect_async())
    return time.perf_counter() - started


def median_ms(job: Callable[[], float]) -> float:
    return statistics.median(job() for _ in range(ROUNDS)) * 1000


def main(count: int) -> int:
    options = ProcessOptions(limit=max(100, count))
    with host_ksm():
        write("run", 1)
        write("pages_to_scan", 5000)
        write("sleep_millisecs", 10)
        with children(count, "identical") as pids:
            deadline = time.monotonic() + 300
            while not merged(pids):
                if time.monotonic() > deadline:
                    raise SystemExit("bench.merging_little: the identical children did not merge")
                time.sleep(0.5)
            reader = HostReader(Roots(), processes=options)
            collection = KsmCollection(reader)
            scrape(collection)  # opens the kept files
            baseline = median_ms(lambda: scrape(collection))
            last = reader.last
            explained = set(last.explanations or {}) if last else set()
            foreign = registered_others(last, set(pids))
            reader.close()
        write("run", 2)  # frees the rmap items: the next children start unvisited
        write("pages_to_scan", 10)
        write("sleep_millisecs", 1000)
        write("run", 1)
        with children(count, "unique") as pids:
            reader = HostReader(Roots(), processes=options)
            collection = KsmCollection(reader)
            scrape(collection)
            cold: list[float] = []
            warm: list[float] = []
            for _ in range(ROUNDS):
                reader.memory_kept.kept.clear()
                cold.append(scrape(collection))
                warm.append(scrape(collection))
            last = reader.last
            reasons = sorted(
                {e.reason for e in (last.explanations or {}).values()} if last else set()
            )
            little = set(last.explanations or {}) if last else set()
            foreign |= registered_others(last, set(pids))
            reader.close()
    print(
        f"baseline: {count} processes merging well, {len(explained)} explained "
        f"({len(explained - foreign)} of them this run's): {baseline:.2f} ms"
    )
    cold_ms, warm_ms = statistics.median(cold) * 1000, statistics.median(warm) * 1000
    print(
        f"{len(little - foreign)} processes merging little ({', '.join(reasons)}), "
        f"{len(little & foreign)} other registered processes explained too: "
        f"cold {cold_ms:.2f} ms, warm {warm_ms:.2f} ms"
    )
    print(f"medians of {ROUNDS} collections each; {len(foreign)} other processes were registered")
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100))

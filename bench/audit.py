"""`ksm-exporter audit` on real KSM against the floor of plain reads of the same pages.

    python -m bench.audit [--processes 8] [--mib-each 512] [--runs 3]   # as root

Starts `--processes` children of `--mib-each` MiB each, registered with KSM: half of each
child's pages are identical across all children (a shared guest image), a quarter identical
with one neighbour, a quarter unique. Under the KSM lock, ksmd merges them at a fast setting;
the settings are then put back (merged pages stay merged) and, still under the lock (another
run's test may unmerge everything with run=2 the moment it is free), for every process
registered with KSM, timed:

- floor: pread of each mergeable range of each process's pagemap (ranges taken beforehand,
  untimed), the frames of its present pages decoded (with the audit's own decoder, the
  fastest here), then one 8-byte pread of kpageflags per distinct frame: the plain reads the
  audit cannot do without.
- tight floor: the same, but kpageflags read in the runs the audit reads it in
  (sources/kpageflags.py `runs`: frames closer than 10 entries read at once).
- audit: `take_audit()` in this process, from the sweep to the counts.
- peak RSS: `python -m ksm_exporter audit --json` as a child, its ru_maxrss.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import resource
import statistics
import subprocess
import sys
import time
from array import array
from collections.abc import Callable, Iterator

from bench.peers import machine
from harness.eventually import eventually
from harness.real_ksm import KsmControl, ksm_control, read_ksm
from ksm_exporter.audit.model import take_audit
from ksm_exporter.derive.tenants import parse_tenant_key
from ksm_exporter.sources.kpageflags import runs
from ksm_exporter.sources.page_sharing import READ_THREADS
from ksm_exporter.sources.pagemap import present_frames
from ksm_exporter.sources.process_sweep import ProcessSweeper
from ksm_exporter.sources.roots import Roots
from ksm_exporter.sources.smaps import Unreadable, read_mergeable_ranges

CHILD = r"""
import hashlib, mmap, os, sys
size, index, count = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
page = mmap.PAGESIZE
pages = size // page
area = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
block = page // 32
def fill(at, name):
    area[at * page:(at + 1) * page] = hashlib.sha256(name.encode()).digest() * block
for at in range(pages):
    part = at * 4 // pages
    if part < 2:
        fill(at, f"image-{at}")
    elif part == 2:
        fill(at, f"pair-{index // 2}-{at}")
    else:
        area[at * page:(at + 1) * page] = os.urandom(32) * block
area.madvise(mmap.MADV_MERGEABLE)
print("ready", flush=True)
sys.stdin.read()
"""
PAGE = os.sysconf("SC_PAGE_SIZE")


@contextlib.contextmanager
def children(count: int, size: int) -> Iterator[list[subprocess.Popen[str]]]:
    started = []
    try:
        for index in range(count):
            started.append(
                subprocess.Popen(
                    [sys.executable, "-c", CHILD, str(size), str(index), str(count)],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        for child in started:
            assert child.stdout is not None
            if child.stdout.readline().strip() != "ready":
                raise SystemExit("a child failed to fill its memory")
        yield started
    finally:
        for child in started:
            child.kill()
            child.wait()


def merging_pages(pid: int) -> int:
    with open(f"/proc/{pid}/ksm_merging_pages") as f:
        return int(f.read())


def merge(ksm: KsmControl, pids: list[int], expected: int) -> float:
    """Seconds ksmd took to merge every child's pages at a fast setting, then put back."""
    started = time.monotonic()
    ksm.set(pages_to_scan=20000, sleep_millisecs=1, run=1)
    eventually(
        lambda: sum(merging_pages(pid) for pid in pids) >= expected,
        timeout=600,
        interval=0.5,
        what=f"ksmd merging {expected} pages",
    )
    seconds = time.monotonic() - started
    ksm.restore()  # ksmd back to its own pace while the audit is timed
    return seconds


def registered_ranges(roots: Roots) -> dict[int, tuple[tuple[int, int], ...]]:
    sweeper = ProcessSweeper(roots.procfs)
    sweep = sweeper.sweep()
    sweeper.close()
    found = {}
    for process in sweep.registered:
        ranges = read_mergeable_ranges(roots.procfs, process.pid)
        if not isinstance(ranges, Unreadable):
            found[process.pid] = ranges
    return found


def pagemap_frames(ranges: dict[int, tuple[tuple[int, int], ...]]) -> list[int]:
    """The distinct frames of every present page in the ranges, read with one pread each and
    decoded as fast as this repository knows how (sources/pagemap.py present_frames())."""
    frames: set[int] = set()
    for pid, pid_ranges in ranges.items():
        fd = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
        try:
            for start, end in pid_ranges:
                raw = os.pread(fd, (end - start) // PAGE * 8, start // PAGE * 8)
                frames.update(present_frames(raw)[0])
        finally:
            os.close(fd)
    return sorted(frames)


def floor(ranges: dict[int, tuple[tuple[int, int], ...]]) -> int:
    frames = pagemap_frames(ranges)
    fd = os.open("/proc/kpageflags", os.O_RDONLY)
    try:
        pread = os.pread
        return sum(1 for pfn in frames if pread(fd, 8, pfn * 8)[2] & 0x20)  # bit 21: KPF_KSM
    finally:
        os.close(fd)


def tight_floor(ranges: dict[int, tuple[tuple[int, int], ...]]) -> int:
    frames = pagemap_frames(ranges)
    fd = os.open("/proc/kpageflags", os.O_RDONLY)
    ksm = 0
    try:
        for first, last in runs(frames):
            flags = array("Q")
            flags.frombytes(os.pread(fd, (last - first + 1) * 8, first * 8))
            ksm += sum(1 for value in flags if value >> 21 & 1)
    finally:
        os.close(fd)
    return ksm


def timed(run: Callable[[], object], times: int) -> list[float]:
    seconds = []
    for _ in range(times):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    return seconds


def peak_rss_mib() -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of the audit run as a child, as the operator runs it."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "ksm_exporter", "audit", "--json"],
        stdout=subprocess.DEVNULL,
        check=True,
    )
    seconds = time.perf_counter() - started
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--mib-each", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=READ_THREADS, help="the audit's readers")
    parser.add_argument("--profile", action="store_true", help="cProfile one audit, then stop")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("the audit reads physical frames: run as root")
    print(f"machine: {machine()}")
    size = args.mib_each << 20
    pages = size // PAGE
    # Every page but the unique quarter ends up mapped to a KSM frame.
    expected = args.processes * (pages // 2 + pages // 4)
    roots = Roots()
    with children(args.processes, size) as started, ksm_control() as ksm:
        pids = [child.pid for child in started]
        print(f"{args.processes} processes x {args.mib_each} MiB registered; merging...")
        print(f"merged {expected} pages in {merge(ksm, pids, expected):.1f} s; settings put back")
        ranges = registered_ranges(roots)
        mergeable = sum(end - start for r in ranges.values() for start, end in r)
        print(
            f"registered processes: {len(ranges)}, mergeable {mergeable / (1 << 30):.2f} GiB; "
            f"pages_shared {read_ksm('pages_shared')}, pages_sharing {read_ksm('pages_sharing')}"
        )
        key = parse_tenant_key("vm")
        if args.profile:
            cProfile.runctx("take_audit(roots, key)", globals(), locals(), sort="tottime")
            return
        audit = take_audit(roots, key)
        print(
            f"audit: {audit.sharing.frames} KSM frames, {audit.sharing.mappings} mappings, "
            f"complete {audit.reading.complete}"
        )
        floor_s = timed(lambda: floor(ranges), args.runs)
        tight_s = timed(lambda: tight_floor(ranges), args.runs)
        audit_s = timed(lambda: take_audit(roots, key, threads=args.threads), args.runs)
        child_s, rss = peak_rss_mib()
    best = {
        name: min(s) for name, s in (("floor", floor_s), ("tight", tight_s), ("audit", audit_s))
    }
    for name, seconds in (("floor", floor_s), ("tight floor", tight_s), ("audit", audit_s)):
        print(f"{name:>12}: min {min(seconds):.3f} s, median {statistics.median(seconds):.3f} s")
    print(
        f"audit / floor {best['audit'] / best['floor']:.2f}x, / tight floor "
        f"{best['audit'] / best['tight']:.2f}x"
    )
    print(f"`ksm-exporter audit --json` as a child: {child_s:.2f} s, peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()

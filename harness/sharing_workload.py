"""Children whose KSM pages are known in advance: each page's content named by a seed.

A child holds one page per seed it is given, each page the seed's SHA-256 repeated, and
registers them with KSM (MADV_MERGEABLE). Pages with the same seed, in any children, are
identical and merge into one KSM frame; a seed given to one child only stays unique. The
seeds carry a token of the run, so no other process on the host holds the same pages.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from harness.real_ksm import KsmChild

CHILD = r"""
import hashlib, mmap, sys
seeds = sys.stdin.readline().split()
page = mmap.PAGESIZE
area = mmap.mmap(-1, max(1, len(seeds)) * page, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
for index, seed in enumerate(seeds):
    area[index * page:(index + 1) * page] = hashlib.sha256(seed.encode()).digest() * (page // 32)
area.madvise(mmap.MADV_MERGEABLE)
print("ready", flush=True)
sys.stdin.read()
"""


@dataclass
class SeededChild(KsmChild):
    seeds: tuple[str, ...] = ()


def start_child(cgroup_procs: str | None = None) -> subprocess.Popen[str]:
    """A child that waits for its seeds; moved into a cgroup first where one is given."""
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    if cgroup_procs is not None:
        with open(cgroup_procs, "w") as procs:
            procs.write(str(process.pid))
    return process


def fill(process: subprocess.Popen[str], seeds: Sequence[str]) -> SeededChild:
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write(" ".join(seeds) + "\n")
    process.stdin.flush()
    line = process.stdout.readline()
    assert line.strip() == "ready", f"seeded child failed: {line!r}"
    return SeededChild(process, tuple(seeds))


@contextlib.contextmanager
def seeded_children(
    layout: Sequence[tuple[str | None, Sequence[str]]],
) -> Iterator[list[SeededChild]]:
    """One child per (cgroup.procs path or None, seeds), all killed afterwards."""
    started: list[subprocess.Popen[str]] = []
    try:
        children = []
        for procs, seeds in layout:
            process = start_child(procs)
            started.append(process)
            children.append(fill(process, seeds))
        yield children
    finally:
        for process in started:
            process.kill()
            process.wait()

"""Measures what a forked child of a merged process shows in its KSM counters.

A parent fills private anonymous memory with groups of identical pages and with zero-filled
pages, registers it with MADV_MERGEABLE and waits until ksmd merged it; then it forks. The
kernel's files are read four times, ksmd stopped (run=0) each time so that they hold still:

- `merged`: the parent alone, merged;
- `forked`: right after fork(), before ksmd saw the child: what dup_mm() and ksm_fork()
  (include/linux/ksm.h) left in the child's mm. Before "mm/ksm: fix incorrect KSM counter
  handling in mm_struct during fork" the child's ksm_merging_pages, ksm_rmap_items and
  ksm_zero_pages are its parent's, copied with the mm; since, the first two start from 0
  and the global ksm_zero_pages grows by the zero pages the child maps;
- `scanned`: after ksmd's full scans visited the child too (stable_tree_append() counts the
  child's own mappings on top of whatever it inherited);
- `exited`: after the child exited (ksm_might_unmap_zero_page() takes its zero pages off the
  global ksm_zero_pages, whether or not they were ever added).

Runs inside a lab guest (as the guest's only job) or on a host; standard library and this
project only. Writes one JSON document to `--output`: {"release", "page_size", "roles",
"workload", "notes", "phases"}, where each phase maps paths like `sys/kernel/mm/ksm/run` or
`proc/<pid>/ksm_stat` to their content.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from harness.eventually import eventually
from lab.guest import (
    KSM,
    command,
    ksm_stat_counts,
    merging_pages,
    progress,
    python_child,
    read,
    read_files,
    write_ksm,
)

# Restored in this order, run last: use_zero_pages is written while ksmd is stopped.
SAVED_SETTINGS = ("pages_to_scan", "sleep_millisecs", "use_zero_pages", "run")
PID_FILES = ("ksm_stat", "ksm_merging_pages")
HOST_FILES = ("proc/sys/kernel/osrelease", "proc/meminfo")
PHASES = ("merged", "forked", "scanned", "exited")
# 256 contents, each on 4 pages: a KSM page has 4 mappings in the parent, 8 once the child
# is merged too, far from max_page_sharing (256), so no stable node chain splits them.
DISTINCT, COPIES, ZEROS = 256, 4, 256
FULL_SCANS = 3  # after the fork: enough for ksmd to visit the child's pages and merge them

# The parent: lines on stdin drive it ("fork", then "release"); it answers each.
PARENT = r"""
import mmap, os, sys
distinct, copies, zeros = (int(word) for word in sys.argv[1:4])
page = mmap.PAGESIZE
area = mmap.mmap(-1, (distinct * copies + zeros) * page,
                 flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
# Small pages only: with THP "always" (Debian's kernels) a huge page that ksmd cannot split
# kept some of the zero pages out of KSM now and then.
area.madvise(mmap.MADV_NOHUGEPAGE)
for content in range(distinct):
    data = (b"ksm-fork-%d;" % content * page)[:page]
    for copy in range(copies):
        offset = (content * copies + copy) * page
        area[offset:offset + page] = data
for index in range(distinct * copies, distinct * copies + zeros):
    area[index * page] = 0  # a write fault: an anonymous page of zeros, not the zero page
area.madvise(mmap.MADV_MERGEABLE)
print("ready", flush=True)
assert sys.stdin.readline().strip() == "fork"
read_end, write_end = os.pipe()
child = os.fork()
if child == 0:
    os.read(read_end, 1)  # touches nothing of the area until released
    os._exit(0)
print(child, flush=True)
assert sys.stdin.readline().strip() == "release"
os.write(write_end, b"x")
os.waitpid(child, 0)
print("released", flush=True)
sys.stdin.read()
"""


def ksm_number(name: str) -> int | None:
    text = read(f"/{KSM}/{name}")
    return None if text is None else int(text)


def snapshot(roles: dict[str, int | None]) -> dict[str, str]:
    """Every KSM file, the release, and the files of registered processes and of `roles`."""
    return read_files(roles, HOST_FILES, PID_FILES)


@contextlib.contextmanager
def ksm_settings() -> Iterator[None]:
    present = [name for name in SAVED_SETTINGS if read(f"/{KSM}/{name}") is not None]
    saved = {name: int(read(f"/{KSM}/{name}") or 0) for name in present}
    try:
        yield
    finally:
        write_ksm("run", 0)
        for name in present:
            write_ksm(name, saved[name])


def full_scans(count: int, what: str) -> None:
    """Wait for ksmd (running) to complete `count` more full scans."""
    target = (ksm_number("full_scans") or 0) + count
    eventually(lambda: (ksm_number("full_scans") or 0) >= target, 300, 0.2, what)


def merged(parent: int) -> bool:
    """The parent's pages all merged, its zero pages too where the kernel counts them (an
    assert, so that a timeout says how far it got)."""
    counts = ksm_stat_counts(parent)
    state = f"{counts}, merging {merging_pages(parent)}, full_scans {ksm_number('full_scans')}"
    assert merging_pages(parent) >= DISTINCT * COPIES, state
    assert int(counts.get("ksm_zero_pages", ZEROS)) >= ZEROS, state
    return True


def measure() -> dict[str, object]:
    phases: dict[str, dict[str, str]] = {}
    sizes = (str(DISTINCT), str(COPIES), str(ZEROS))
    with ksm_settings():
        write_ksm("run", 0)
        if read(f"/{KSM}/use_zero_pages") is not None:
            write_ksm("use_zero_pages", 1)
        write_ksm("pages_to_scan", 1000)
        write_ksm("sleep_millisecs", 10)
        with python_child(PARENT, *sizes) as parent:
            assert parent.stdin is not None
            assert parent.stdout is not None
            assert parent.stdout.readline().strip() == "ready"
            roles: dict[str, int | None] = {"parent": parent.pid, "child": None}
            write_ksm("run", 1)
            eventually(lambda: merged(parent.pid), 300, 0.2, "the parent's pages to merge")
            full_scans(1, "one more full scan, so that the rmap items settle too")
            write_ksm("run", 0)
            phases["merged"] = snapshot(roles)
            progress("merged")
            parent.stdin.write("fork\n")
            parent.stdin.flush()
            roles["child"] = int(parent.stdout.readline())
            phases["forked"] = snapshot(roles)
            progress(f"forked {roles['child']}")
            write_ksm("run", 1)
            full_scans(FULL_SCANS, "ksmd to scan the child")
            write_ksm("run", 0)
            phases["scanned"] = snapshot(roles)
            progress("scanned")
            parent.stdin.write("release\n")
            parent.stdin.flush()
            assert parent.stdout.readline().strip() == "released"
            phases["exited"] = snapshot({"parent": parent.pid})
            progress("child exited")
    return {
        "release": os.uname().release,
        "page_size": os.sysconf("SC_PAGE_SIZE"),
        "roles": roles,
        "workload": {"distinct": DISTINCT, "copies": COPIES, "zeros": ZEROS},
        "notes": {},
        "phases": phases,
    }


def main() -> None:
    command(measure, __doc__)


if __name__ == "__main__":
    main()

"""What the per-process counters add up to on real KSM, and what a forked child inherits.

stable_tree_append() (mm/ksm.c) counts every mapping of a KSM page in its mm's
ksm_merging_pages, the first one too, so the sum over processes is pages_shared +
pages_sharing, and the summed ksm_process_profit exceeds general_profit by pages_shared pages.
Since "mm/ksm: fix incorrect KSM counter handling in mm_struct during fork" a forked child
starts from 0; before it, the child showed its parent's counters.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.eventually import eventually
from harness.real_ksm import KsmControl, ksm_control, merging_child, read_ksm, read_ksm_stat

pytestmark = pytest.mark.realksm

PAGE = os.sysconf("SC_PAGE_SIZE")


@pytest.fixture
def ksm() -> Iterator[KsmControl]:
    with ksm_control() as control:
        control.set(pages_to_scan=5000, sleep_millisecs=10, run=1)
        yield control


def summed(key: str) -> int:
    total = 0
    for stat in Path("/proc").glob("[0-9]*/ksm_stat"):
        try:
            total += int(read_ksm_stat(stat.parent.name).get(key, 0))
        except (OSError, ValueError):
            continue  # gone meanwhile
    return total


def test_merging_pages_sum_to_shared_plus_sharing(ksm: KsmControl) -> None:
    with merging_child(16 << 20) as child:
        child.wait_merged(4096)
        ksm.set(run=0)  # ksmd stopped: the counters hold still while they are summed
        shared, sharing = read_ksm("pages_shared"), read_ksm("pages_sharing")
        assert shared > 0
        assert summed("ksm_merging_pages") == shared + sharing
        if Path("/sys/kernel/mm/ksm/general_profit").exists():
            profit = read_ksm("general_profit")
            assert summed("ksm_process_profit") == profit + shared * PAGE


def test_a_forked_child_starts_from_zero_on_this_kernel(ksm: KsmControl) -> None:
    pages = 2048
    area = mmap.mmap(-1, pages * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    for i in range(pages):
        area[i * PAGE] = 1
    area.madvise(mmap.MADV_MERGEABLE)
    me = os.getpid()
    eventually(
        lambda: int(read_ksm_stat(me).get("ksm_merging_pages", 0)) >= pages or None,
        60,
        what="this process merging its pages",
    )
    ksm.set(run=0)
    parent = read_ksm_stat(me)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child only waits to be read
        os.read(read_end, 1)
        os._exit(0)
    try:
        child = read_ksm_stat(pid)
    finally:
        os.write(write_end, b"x")
        os.waitpid(pid, 0)
        area.close()
    assert int(parent["ksm_merging_pages"]) >= pages
    # 6.18 here: the fork fix is in, so nothing of the parent's shows in the child.
    assert child.get("ksm_merging_pages", "0") == "0"
    assert child.get("ksm_rmap_items", "0") == "0"

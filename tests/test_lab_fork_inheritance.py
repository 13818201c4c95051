"""Kernel lab: a merged process forked on each lab kernel. What the child shows right after
fork() (the parent's ksm_merging_pages and ksm_rmap_items, or 0) is what the committed fork
capture of that kernel series recorded, and every KSM file agrees with mm/ksm.c's accounting
(lab/forks.py's findings(): stable_tree_append() counts each mapping, so the per-process sum
exceeds pages_shared + pages_sharing by exactly what the child inherited)."""

from __future__ import annotations

import pytest

from lab import forks
from lab.measure import LAB_KERNELS
from tests.support.lab_kernels import measured, sound_findings

pytestmark = pytest.mark.lab


@pytest.mark.parametrize("kernel", LAB_KERNELS)
def test_a_forked_child_shows_what_its_kernel_recorded(kernel: str) -> None:
    fork = measured(forks.measure_fork, kernel)
    found = sound_findings(fork)
    parent = fork.counters("forked", fork.parent)
    child = fork.counters("forked", fork.child)
    pages = fork.workload["distinct"] * fork.workload["copies"]
    assert parent["ksm_merging_pages"] == pages  # every mapping counted, the first one too
    assert child["ksm_merging_pages"] == (pages if found.inherited else 0)
    committed = forks.committed(fork.release)
    assert committed is not None, f"no committed fork capture of {fork.release}"
    assert forks.findings(committed).inherited == found.inherited

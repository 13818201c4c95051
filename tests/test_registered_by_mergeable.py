"""A process is registered with KSM when the kernel says `ksm_mergeable: yes`
(proc_pid_ksm_stat() in fs/proc/base.c, from ksm_process_mergeable() in mm/ksm.c), even with
no rmap items yet: KSM stopped, after run=2, before ksmd's first visit."""

from __future__ import annotations

import pytest

from ksm_exporter.sources.ksm_stat import parse_ksm_stat

pytestmark = pytest.mark.unit

STOPPED = (
    b"ksm_rmap_items 0\nksm_zero_pages 0\nksm_merging_pages 0\nksm_process_profit 0\n"
    b"ksm_merge_any: no\nksm_mergeable: yes\n"
)


def test_mergeable_without_rmap_items_is_registered() -> None:
    assert parse_ksm_stat(STOPPED).registered


def test_not_mergeable_and_nothing_scanned_is_not_registered() -> None:
    assert not parse_ksm_stat(STOPPED.replace(b"mergeable: yes", b"mergeable: no")).registered


def test_without_the_line_rmap_items_tell() -> None:
    assert not parse_ksm_stat(b"ksm_rmap_items 0\n").registered  # 6.1: cannot be known
    assert parse_ksm_stat(b"ksm_rmap_items 12\n").registered

"""pagemap, kpageflags and smaps read as the kernel lays them out; bad input never raises."""

from __future__ import annotations

import os
import shutil
import struct
from array import array
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.paths import FIXTURES, fixture_roots
from ksm_exporter.sources.kpageflags import read_frame_flags, runs
from ksm_exporter.sources.page_sharing import read_page_sharing
from ksm_exporter.sources.pagemap import (
    decode_entry,
    present_frames,
    present_frames_slowly,
    read_frames,
)
from ksm_exporter.sources.roots import Roots
from ksm_exporter.sources.smaps import Unreadable, parse_mergeable_ranges, read_mergeable_ranges

pytestmark = pytest.mark.unit

PRIVILEGED = FIXTURES / "sharing" / "privileged"

pfns = st.integers(min_value=0, max_value=(1 << 55) - 1)


def present_entry(pfn: int, soft_dirty: bool, exclusive: bool, file: bool) -> int:
    """Bits as Documentation/admin-guide/mm/pagemap.rst lists them."""
    return (1 << 63) | file << 61 | exclusive << 56 | soft_dirty << 55 | pfn


@given(pfns, st.booleans(), st.booleans(), st.booleans())
def test_a_present_entry_gives_its_frame_and_flags(
    pfn: int, soft_dirty: bool, exclusive: bool, file: bool
) -> None:
    entry = decode_entry(present_entry(pfn, soft_dirty, exclusive, file))
    assert entry.present
    assert not entry.swapped
    assert entry.pfn == pfn
    assert (entry.soft_dirty, entry.exclusive, entry.file_or_shared_anon) == (
        soft_dirty,
        exclusive,
        file,
    )
    assert entry.swap_type is None
    assert entry.swap_offset is None


@given(st.integers(0, 31), st.integers(0, (1 << 50) - 1))
def test_a_swapped_entry_gives_no_frame_but_its_swap_slot(swap_type: int, offset: int) -> None:
    entry = decode_entry((1 << 62) | offset << 5 | swap_type)
    assert not entry.present
    assert entry.swapped
    assert entry.pfn is None
    assert (entry.swap_type, entry.swap_offset) == (swap_type, offset)


any_entry = st.one_of(
    st.integers(0, (1 << 64) - 1),
    st.builds(
        present_entry, st.one_of(st.just(0), pfns), st.booleans(), st.booleans(), st.booleans()
    ),
    st.just(0),
)


@given(st.lists(any_entry), st.binary(max_size=7))
def test_the_frames_of_a_run_are_those_of_its_present_entries_in_order(
    entries: list[int], trailing: bytes
) -> None:
    raw = struct.pack(f"<{len(entries)}Q", *entries) + trailing
    decoded = [decode_entry(entry) for entry in entries]
    present = [entry.pfn for entry in decoded if entry.present]
    assert present_frames(raw) == (array("Q", [pfn for pfn in present if pfn]), len(present))
    assert list(present_frames_slowly(raw)) == present


@given(st.lists(st.integers(0, 1 << 40), unique=True), st.integers(0, 64), st.integers(1, 256))
def test_reads_of_kpageflags_cover_every_frame_asked_and_only_near_ones(
    frames: list[int], gap: int, limit: int
) -> None:
    frames.sort()
    found = runs(frames, gap, limit)
    covered = [pfn for pfn in frames if any(first <= pfn <= last for first, last in found)]
    assert covered == frames
    assert all(last - first < limit for first, last in found)
    assert sum(1 for pfn in frames for first, _last in found if pfn == first) == len(found)


def test_kpageflags_marks_the_ksm_frames_not_the_zero_page() -> None:
    flags = read_frame_flags(
        str(PRIVILEGED / "proc" / "kpageflags"), [0x100, 0x101, 0x180, 0x200, 0x1000, 0x5000]
    )
    assert flags.ksm == {0x100, 0x101, 0x1000}
    assert flags.unread == 1  # beyond the file's end
    assert flags.error == ""


def test_kpageflags_missing_is_an_error_not_a_finding(tmp_path: Path) -> None:
    flags = read_frame_flags(str(tmp_path / "kpageflags"), [0x100])
    assert flags.error.startswith("ENOENT")
    assert flags.ksm == set()


def test_only_areas_flagged_mg_are_mergeable_and_adjacent_ones_join() -> None:
    smaps = (PRIVILEGED / "proc" / "3001" / "smaps").read_bytes()
    assert parse_mergeable_ranges(smaps) == ((0x400000, 0x40A000),)
    assert parse_mergeable_ranges(b"") == ()
    assert parse_mergeable_ranges(b"garbage\nVmFlags: mg\n") == ()


def test_smaps_of_a_process_gone_is_an_error(tmp_path: Path) -> None:
    ranges = read_mergeable_ranges(str(tmp_path), 4242)
    assert isinstance(ranges, Unreadable)
    assert ranges.vanished


def test_pagemap_gives_the_frames_of_present_pages_in_the_ranges_read() -> None:
    frames = read_frames(
        str(PRIVILEGED / "proc" / "3001" / "pagemap"), 3001, [(0x400000, 0x40A000)], 4096
    )
    assert list(frames.frames) == [0x100, 0x100, 0x101, 0x101, 0x102, 0x103, 0x180, 0x200]
    assert frames.pages_read == 10
    assert frames.hidden == 0
    assert frames.error == ""


def test_pagemap_hides_frames_without_cap_sys_admin() -> None:
    path = FIXTURES / "sharing" / "unprivileged" / "proc" / "3001" / "pagemap"
    frames = read_frames(str(path), 3001, [(0x400000, 0x40A000)], 4096)
    assert list(frames.frames) == []
    assert frames.hidden == 8


def test_a_range_past_the_end_reads_short_without_raising() -> None:
    path = PRIVILEGED / "proc" / "3003" / "pagemap"
    frames = read_frames(str(path), 3003, [(0x800000, 0x900000)], 4096)
    assert list(frames.frames) == [0x103, 0x182]
    assert frames.error == ""


def test_the_reading_lists_each_process_and_its_ksm_mappings() -> None:
    reading = read_page_sharing(fixture_roots("sharing/privileged"), page_size=4096)
    frames = {p.pid: sorted(p.ksm_frames) for p in reading.processes}
    assert frames == {
        3001: [0x100, 0x100, 0x101, 0x101, 0x102, 0x103],
        3002: [0x102, 0x102, 0x103, 0x104],
        3003: [0x103],
        3004: [0x104, 0x1000, 0x1000],
    }
    assert {p.pid: p.zero_pages for p in reading.processes}[3001] == 1
    assert {p.pid: p.uid for p in reading.processes} == {3001: 107, 3002: 107, 3003: 108, 3004: 999}
    assert reading.complete
    assert not reading.missing_privilege
    assert reading.counters_after["pages_sharing"] == 8


def copy_tree(tmp_path: Path) -> Roots:
    shutil.copytree(PRIVILEGED, tmp_path / "tree")
    return Roots(str(tmp_path / "tree" / "sys"), str(tmp_path / "tree" / "proc"))


def test_a_process_that_exits_while_read_is_listed_and_the_reading_marked_partial(
    tmp_path: Path,
) -> None:
    roots = copy_tree(tmp_path)
    os.remove(os.path.join(roots.procfs, "3002", "pagemap"))
    reading = read_page_sharing(roots, page_size=4096)
    assert [p.pid for p in reading.failed] == [3002]
    assert reading.failed[0].error.startswith("pagemap: ENOENT")
    assert not reading.complete
    assert sorted(p.pid for p in reading.read) == [3001, 3003, 3004]


def test_without_kpageflags_the_reading_says_so(tmp_path: Path) -> None:
    roots = copy_tree(tmp_path)
    os.remove(os.path.join(roots.procfs, "kpageflags"))
    reading = read_page_sharing(roots, page_size=4096)
    assert reading.kpageflags_error.startswith("ENOENT")
    assert not reading.complete
    assert all(len(p.ksm_frames) == 0 for p in reading.processes)


def test_hidden_frames_are_named_as_missing_cap_sys_admin() -> None:
    reading = read_page_sharing(fixture_roots("sharing/unprivileged"), page_size=4096)
    assert "CAP_SYS_ADMIN" in reading.missing_privilege
    assert not reading.complete

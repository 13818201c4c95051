"""Held sysfs descriptors give the same readings as fresh opens, through faults and repairs."""

from __future__ import annotations

import gc
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.paths import FIXTURES
from harness.real_ksm import KSM, ksm_control
from ksm_exporter.sources.ksm_files import DECLARED
from ksm_exporter.sources.sysfs import HeldKsmSysfs, SysfsReading, read_ksm_sysfs


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    root = tmp_path / "sys"
    shutil.copytree(FIXTURES / "current" / "sys", root)
    return root


@pytest.fixture
def reader(sysfs: Path) -> Iterator[HeldKsmSysfs]:
    held = HeldKsmSysfs(str(sysfs))
    yield held
    held.close()


def ksm(sysfs: Path) -> Path:
    return sysfs / "kernel" / "mm" / "ksm"


def open_files_under(directory: Path) -> int:
    fds = "/proc/self/fd"
    return sum(
        1
        for fd in os.listdir(fds)
        if os.path.realpath(os.path.join(fds, fd)).startswith(str(directory))
    )


def same_as_fresh(reader: HeldKsmSysfs) -> SysfsReading:
    held = reader.read()
    assert held == read_ksm_sysfs(reader.sysfs_root)
    return held


@pytest.mark.unit
@pytest.mark.parametrize("fixture", ["current", "old-kernel", "broken"])
def test_held_reads_equal_fresh_reads(fixture: str) -> None:
    reader = HeldKsmSysfs(str(FIXTURES / fixture / "sys"))
    try:
        for _ in range(3):
            same_as_fresh(reader)
    finally:
        reader.close()


@pytest.mark.unit
def test_files_stay_open_between_reads_and_close(reader: HeldKsmSysfs, sysfs: Path) -> None:
    reader.read()
    assert open_files_under(sysfs) == len(DECLARED.names)
    reader.read()
    assert open_files_under(sysfs) == len(DECLARED.names)
    reader.close()
    assert open_files_under(sysfs) == 0


@pytest.mark.unit
def test_a_value_rewritten_in_place_is_seen(reader: HeldKsmSysfs, sysfs: Path) -> None:
    assert reader.read().snapshot.pages_sharing == 30000
    with open(ksm(sysfs) / "pages_sharing", "r+b") as f:  # same inode, like sysfs
        f.write(b"31234\n")
    assert same_as_fresh(reader).snapshot.pages_sharing == 31234


@pytest.mark.unit
def test_a_removed_file_is_absent_and_back_when_restored(reader: HeldKsmSysfs, sysfs: Path) -> None:
    reader.read()
    (ksm(sysfs) / "pages_scanned").unlink()
    assert same_as_fresh(reader).snapshot.pages_scanned is None
    (ksm(sysfs) / "pages_scanned").write_text("77\n")
    assert same_as_fresh(reader).snapshot.pages_scanned == 77


@pytest.mark.unit
def test_a_file_replaced_by_a_directory_or_a_loop(reader: HeldKsmSysfs, sysfs: Path) -> None:
    reader.read()
    run = ksm(sysfs) / "run"
    run.unlink()
    run.mkdir()
    broken = same_as_fresh(reader)
    assert [(p.path, p.reason) for p in broken.problems] == [(str(run), "EISDIR: Is a directory")]
    run.rmdir()
    run.symlink_to(run)
    looped = same_as_fresh(reader)
    assert [p.reason for p in looped.problems] == ["ELOOP: Too many levels of symbolic links"]
    run.unlink()
    run.write_text("1\n")
    repaired = same_as_fresh(reader)
    assert (repaired.problems, repaired.snapshot.run) == ((), 1)


@pytest.mark.unit
def test_the_directory_removed_and_restored(reader: HeldKsmSysfs, sysfs: Path) -> None:
    assert reader.read().snapshot.available
    shutil.rmtree(ksm(sysfs))
    gone = same_as_fresh(reader)
    assert (gone.snapshot.available, gone.problems) == (False, ())
    assert open_files_under(sysfs) == 0
    shutil.copytree(FIXTURES / "old-kernel" / "sys" / "kernel" / "mm" / "ksm", ksm(sysfs))
    back = same_as_fresh(reader)
    assert (back.snapshot.available, back.snapshot.pages_sharing) == (True, 55)


@pytest.mark.realksm
def test_a_held_descriptor_follows_the_real_kernel() -> None:
    with ksm_control() as control:
        reader = HeldKsmSysfs("/sys")
        try:
            before = reader.read().snapshot.sleep_millisecs
            assert before is not None
            changed = before + 7
            control.set(sleep_millisecs=changed)
            assert reader.read().snapshot.sleep_millisecs == changed
            assert open_files_under(Path(KSM)) > 0
        finally:
            reader.close()


@pytest.mark.unit
def test_a_reader_dropped_without_close_gives_its_files_back(sysfs: Path) -> None:
    reader = HeldKsmSysfs(str(sysfs))
    reader.read()
    assert open_files_under(sysfs) == len(DECLARED.names)
    del reader
    gc.collect()
    assert open_files_under(sysfs) == 0

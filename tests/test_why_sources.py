"""The small readers behind "why is nothing merging?": smaps and smaps_rollup as
fs/proc/task_mmu.c writes them (captured from this machine's 6.18 kernel), vmstat's KSM
counters, THP's mode, QEMU's mem-merge and a systemd unit's MemoryKSM=. Each says why it could
not read a file instead of raising."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ksm_exporter.sources.qemu_command_line import qemu_mem_merge_off
from ksm_exporter.sources.smaps import (
    MemorySizes,
    Unreadable,
    parse_mergeable_areas,
    parse_smaps_rollup,
    read_mergeable_areas,
    read_smaps_rollup,
)
from ksm_exporter.sources.systemd_unit import read_memory_ksm, unit_of_cgroup
from ksm_exporter.sources.thp import active_mode, read_huge_pages
from ksm_exporter.sources.vmstat import parse_vmstat, read_ksm_events

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures" / "why"
KiB = 1024


def test_smaps_rollup_sizes_are_its_kb_lines_in_bytes() -> None:
    sizes = parse_smaps_rollup((FIXTURES / "smaps_rollup").read_bytes())
    assert sizes == MemorySizes(13664 * KiB, 7408 * KiB, 0, 0)


def test_only_the_areas_flagged_mg_count_as_mergeable() -> None:
    """The capture holds the heap, the child's 4 MiB MADV_MERGEABLE area and a library."""
    areas = parse_mergeable_areas((FIXTURES / "smaps_one_mergeable_area").read_bytes())
    assert (areas.areas, areas.size_bytes) == (1, 4096 * KiB)
    assert areas.sizes == MemorySizes(4096 * KiB, 4096 * KiB, 0, 0)


def test_a_process_without_mergeable_areas_has_none() -> None:
    raw = (FIXTURES / "smaps_one_mergeable_area").read_bytes().replace(b" mg ", b" ")
    areas = parse_mergeable_areas(raw)
    assert (areas.areas, areas.size_bytes) == (0, 0)


def test_a_vanished_process_is_said_to_have_exited(tmp_path: Path) -> None:
    for read in (read_smaps_rollup, read_mergeable_areas):
        result = read(str(tmp_path), 4242)
        assert isinstance(result, Unreadable)
        assert result.vanished, result


def test_a_kernel_thread_has_no_memory_to_explain(tmp_path: Path) -> None:
    (tmp_path / "2").mkdir()
    (tmp_path / "2" / "smaps_rollup").write_bytes(b"")
    result = read_smaps_rollup(str(tmp_path), 2)
    assert isinstance(result, Unreadable)
    assert "no memory" in result.reason


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_smaps_names_the_privilege(tmp_path: Path) -> None:
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "smaps").write_bytes(b"x")
    (tmp_path / "7" / "smaps").chmod(0)
    result = read_mergeable_areas(str(tmp_path), 7)
    assert isinstance(result, Unreadable)
    assert "ptrace" in result.reason


def test_vmstat_counters_absent_from_the_kernel_are_none() -> None:
    events = parse_vmstat(b"nr_free_pages 10\ncow_ksm 7\nthp_fault_alloc 0\n")
    assert (events.cow_ksm, events.ksm_swpin_copy) == (7, None)


def test_vmstat_unreadable_says_so(tmp_path: Path) -> None:
    assert isinstance(read_ksm_events(str(tmp_path)), Unreadable)


def test_thp_mode_is_the_bracketed_word(tmp_path: Path) -> None:
    assert active_mode(b"always [madvise] never\n") == "madvise"
    assert active_mode(b"always madvise never\n") is None
    assert isinstance(read_huge_pages(str(tmp_path)), Unreadable)
    thp = tmp_path / "kernel" / "mm" / "transparent_hugepage"
    (thp / "khugepaged").mkdir(parents=True)
    (thp / "enabled").write_bytes(b"[always] madvise never\n")
    (thp / "khugepaged" / "pages_collapsed").write_bytes(b"12\n")
    huge = read_huge_pages(str(tmp_path))
    assert not isinstance(huge, Unreadable)
    assert (huge.enabled, huge.pages_collapsed) == ("always", 12)


def argv(*parts: str) -> bytes:
    return b"".join(part.encode() + b"\0" for part in parts)


@pytest.mark.parametrize(
    ("command_line", "off"),
    [
        # libvirt's <nosharepages/> (qemuBuildMachineCommandLine)
        (argv("/usr/bin/qemu-system-x86_64", "-machine", "pc-q35-8.2,mem-merge=off"), True),
        # Proxmox's allow-ksm: 0
        (argv("/usr/bin/kvm", "-id", "100", "-machine", "type=pc,mem-merge=off"), True),
        (argv("qemu-system-x86_64", "-M", "q35", "-machine", "mem-merge=no"), True),
        (
            argv("qemu-system-x86_64", "-machine", "mem-merge=off", "-machine", "mem-merge=on"),
            False,
        ),
        (argv("qemu-system-x86_64", "-object", "memory-backend-ram,id=m0,size=1G,merge=off"), True),
        (argv("qemu-system-x86_64", "-machine", "q35", "-m", "1G"), False),
        (argv("/usr/bin/python3", "-machine", "mem-merge=off"), False),
    ],
)
def test_qemu_mem_merge_off_is_read_as_qemu_parses_it(command_line: bytes, off: bool) -> None:
    assert (qemu_mem_merge_off(command_line) is not None) == off


def test_a_unit_is_the_last_service_or_scope_of_the_cgroup() -> None:
    assert unit_of_cgroup("/system.slice/web.service") == "web.service"
    assert unit_of_cgroup("/user.slice/user-0.slice/session-3.scope") == "session-3.scope"
    assert unit_of_cgroup("/kubepods.slice/pod1") is None


def test_memory_ksm_comes_from_the_unit_file_then_its_drop_ins(tmp_path: Path) -> None:
    system = tmp_path / "etc" / "systemd" / "system"
    (system / "web.service.d").mkdir(parents=True)
    (system / "web.service").write_text("[Service]\nExecStart=/bin/web\nMemoryKSM=no\n")
    assert read_memory_ksm("/system.slice/web.service", str(tmp_path)) is not None
    (system / "web.service.d" / "ksm.conf").write_text("[Service]\nMemoryKSM=yes\n")
    setting = read_memory_ksm("/system.slice/web.service", str(tmp_path))
    assert setting is not None
    assert setting.enabled
    assert setting.path.endswith("ksm.conf")
    assert read_memory_ksm("/system.slice/other.service", str(tmp_path)) is None


def test_a_template_instance_takes_the_template_file(tmp_path: Path) -> None:
    lib = tmp_path / "usr" / "lib" / "systemd" / "system"
    lib.mkdir(parents=True)
    (lib / "vm@.service").write_text("[Service]\nMemoryKSM=true\n")
    setting = read_memory_ksm("/system.slice/system-vm.slice/vm@a.service", str(tmp_path))
    assert setting is not None
    assert setting.enabled
    assert setting.unit == "vm@a.service"

from __future__ import annotations

import math
from pathlib import Path

import pytest

from harness.paths import FIXTURES
from ksm_exporter.derive.savings import Savings, derive_savings
from ksm_exporter.sources.meminfo import WANTED, parse_sizes, read_meminfo
from ksm_exporter.sources.sysfs import KsmSysfs

pytestmark = pytest.mark.unit


def test_mem_total_in_bytes() -> None:
    reading = read_meminfo(str(FIXTURES / "current" / "proc" / "meminfo"))
    assert reading.mem_total_bytes == 16384000 * 1024
    assert reading.problems == ()


def test_mem_total_garbage_is_a_problem() -> None:
    reading = read_meminfo(str(FIXTURES / "broken" / "proc" / "meminfo"))
    assert reading.mem_total_bytes is None
    assert [p.reason for p in reading.problems] == ["MemTotal is not a size"]


@pytest.mark.parametrize(
    "content", [b"", b"MemFree: 10 kB\n", b"MemTotal: 0 kB\n", b"MemTotal: 10 MB\n", b"\xff\xfe"]
)
def test_mem_total_absent_or_bad(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "meminfo").write_bytes(content)
    reading = read_meminfo(str(tmp_path / "meminfo"))
    assert reading.mem_total_bytes is None
    assert len(reading.problems) == 1


def test_no_meminfo_file(tmp_path: Path) -> None:
    assert read_meminfo(str(tmp_path / "meminfo")).mem_total_bytes is None
    assert read_meminfo(str(tmp_path / "meminfo")).problems == ()


def test_savings_current_kernel() -> None:
    ksm = KsmSysfs(
        available=True,
        pages_shared=1200,
        pages_sharing=30000,
        pages_unshared=4500,
        ksm_zero_pages=250,
    )
    savings = derive_savings(ksm, page_size=4096, mem_total_bytes=16384000 * 1024)
    assert savings == Savings(
        saved_bytes=30250 * 4096,
        saved_ratio=30250 * 4096 / (16384000 * 1024),
        mappings_per_shared_page=26.0,  # the first mapping of each page counts in pages_shared
        unshared_pages_per_sharing_page=0.15,
    )


def test_savings_without_zero_pages_file_and_without_meminfo() -> None:
    ksm = KsmSysfs(available=True, pages_shared=10, pages_sharing=55, pages_unshared=300)
    savings = derive_savings(ksm, page_size=16384, mem_total_bytes=None)
    assert savings == Savings(55 * 16384, None, 6.5, 300 / 55)


def test_unshared_pages_with_nothing_sharing_is_infinite_waste() -> None:
    ksm = KsmSysfs(available=True, pages_shared=0, pages_sharing=0, pages_unshared=77)
    assert derive_savings(ksm, 4096, 1 << 30) == Savings(0, 0.0, None, math.inf)


def test_nothing_to_judge_when_nothing_is_unshared_or_sharing() -> None:
    ksm = KsmSysfs(available=True, pages_shared=0, pages_sharing=0, pages_unshared=0)
    assert derive_savings(ksm, 4096, 1 << 30) == Savings(0, 0.0, None, None)


def test_unreadable_zero_pages_leaves_saved_memory_out() -> None:
    """Some 6.6-6.9 kernels show ksm_zero_pages as -1: no figure rather than an understated one."""
    ksm = KsmSysfs(
        available=True,
        unreadable=frozenset({"ksm_zero_pages"}),
        pages_shared=10,
        pages_sharing=55,
        pages_unshared=5,
    )
    assert derive_savings(ksm, 4096, 1 << 30) == Savings(None, None, 6.5, 5 / 55)


def test_nothing_derived_without_ksm() -> None:
    assert derive_savings(KsmSysfs(), 4096, 1 << 30) == Savings(None, None, None, None)


def test_free_memory_as_ksmtuned_counts_it(tmp_path: Path) -> None:
    (tmp_path / "meminfo").write_bytes(
        b"MemTotal:  1000 kB\nMemFree:  100 kB\nMemAvailable: 500 kB\nBuffers:  20 kB\n"
        b"Cached:  300 kB\nHugePages_Total:  0\n"
    )
    meminfo = read_meminfo(str(tmp_path / "meminfo")).meminfo
    assert (meminfo.mem_total_bytes, meminfo.free_bytes) == (1000 * 1024, 420 * 1024)
    assert meminfo.available_bytes == 500 * 1024  # MemAvailable, as KubeVirt counts it


def test_free_memory_needs_all_three_figures(tmp_path: Path) -> None:
    (tmp_path / "meminfo").write_bytes(b"MemTotal: 1000 kB\nMemFree: 100 kB\nCached: x kB\n")
    reading = read_meminfo(str(tmp_path / "meminfo"))
    assert (reading.mem_total_bytes, reading.meminfo.free_bytes) == (1000 * 1024, None)
    assert reading.problems == ()


MEMINFO_FILES = sorted(FIXTURES.glob("**/proc/meminfo"))


@pytest.mark.parametrize(
    "path", [Path("/proc/meminfo"), *MEMINFO_FILES], ids=lambda p: str(p.relative_to(p.anchor))
)
def test_stopping_at_the_wanted_lines_parses_as_every_line_does(path: Path) -> None:
    """The speed path of parse_sizes (bench.speed_paths "meminfo") against the full parse."""
    if not path.is_file():
        pytest.skip(f"{path} does not exist")
    raw = path.read_bytes()
    sizes, garbled = parse_sizes(raw)
    wanted = {name.decode() for name in WANTED}
    assert parse_sizes(raw, WANTED) == (
        {name: size for name, size in sizes.items() if name in wanted},
        {name: text for name, text in garbled.items() if name in wanted},
    )


def test_a_wanted_line_after_many_others_is_found() -> None:
    raw = b"".join(b"Other%d: %d kB\n" % (n, n) for n in range(100)) + b"MemAvailable: 7 kB\n"
    assert parse_sizes(raw, WANTED) == ({"MemAvailable": 7 * 1024}, {})

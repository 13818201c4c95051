"""Short of memory: MemAvailable against MemTotal, and PSI's `some avg10` from
/proc/pressure/memory as kernel/sched/psi.c writes it (psi_show()); and the registered
processes' resident pages from <pid>/statm, as fs/proc/array.c writes it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ksm_exporter.derive.memory_pressure import short_of_memory
from ksm_exporter.sources.meminfo import Meminfo
from ksm_exporter.sources.memory_pressure import read_memory_pressure
from ksm_exporter.sources.process_memory import resident_pages

pytestmark = pytest.mark.unit

GIB = 1 << 30
AT_EASE = Meminfo(mem_total_bytes=16 * GIB, free_bytes=8 * GIB, available_bytes=12 * GIB)


def pressure_file(tmp_path: Path, some: str, full: str = "0.00") -> str:
    (tmp_path / "pressure").mkdir(parents=True)
    (tmp_path / "pressure" / "memory").write_text(
        f"some avg10={some} avg60=1.20 avg300=0.40 total=81234567\n"
        f"full avg10={full} avg60=0.10 avg300=0.02 total=1234567\n"
    )
    return str(tmp_path)


def test_the_hosts_own_file_parses_or_is_absent() -> None:
    pressure = read_memory_pressure("/proc")
    if not Path("/proc/pressure/memory").exists():
        assert pressure is None
        return
    some = Path("/proc/pressure/memory").read_text().split()[1]
    assert pressure is not None
    assert pressure.some_avg10 == float(some.removeprefix("avg10="))


def test_stalls_over_5_percent_of_10_s_are_a_shortage(tmp_path: Path) -> None:
    stalled = read_memory_pressure(pressure_file(tmp_path / "a", "12.50", "3.10"))
    assert stalled is not None
    assert (stalled.some_avg10, stalled.full_avg10) == (12.5, 3.1)
    assert short_of_memory(AT_EASE, stalled) == "tasks stalled on memory 12.5% of the last 10 s"
    calm = read_memory_pressure(pressure_file(tmp_path / "b", "4.99"))
    assert short_of_memory(AT_EASE, calm) is None


def test_available_memory_under_a_tenth_is_a_shortage_psi_or_not() -> None:
    low = Meminfo(mem_total_bytes=16 * GIB, free_bytes=GIB, available_bytes=GIB)
    assert short_of_memory(low, None) == "MemAvailable is 6.2% of MemTotal"
    assert short_of_memory(AT_EASE, None) is None
    unknown = Meminfo(mem_total_bytes=16 * GIB)
    assert short_of_memory(unknown, None) is None  # nothing says so


@pytest.mark.parametrize("content", ["", "some avg10=x\n", "garbage\n"])
def test_a_file_that_does_not_parse_is_no_figure(tmp_path: Path, content: str) -> None:
    (tmp_path / "pressure").mkdir()
    (tmp_path / "pressure" / "memory").write_text(content)
    assert read_memory_pressure(str(tmp_path)) is None


def test_resident_pages_are_statms_second_field() -> None:
    pid = os.getpid()
    pages = resident_pages("/proc", [pid])
    resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    assert pages is not None
    assert abs(pages - resident) <= 256  # this process may touch a page or two meanwhile


def test_a_process_gone_counts_nothing_and_garbage_is_no_sum(tmp_path: Path) -> None:
    (tmp_path / "10").mkdir()
    (tmp_path / "10" / "statm").write_text("765 418 390 5 0 123 0\n")
    assert resident_pages(str(tmp_path), [10, 11]) == 418  # 11 exited meanwhile
    (tmp_path / "12").mkdir()
    (tmp_path / "12" / "statm").write_text("765\n")
    assert resident_pages(str(tmp_path), [10, 12]) is None

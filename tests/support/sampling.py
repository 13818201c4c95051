"""Fixture trees that change between samples, and a clock the test moves by hand."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from harness.paths import FIXTURES
from ksm_exporter.collector.collection import KsmCollection
from ksm_exporter.reading.host_reader import HostReader
from ksm_exporter.sources.ksmd import PF_KTHREAD
from ksm_exporter.sources.roots import Roots

CLOCK_TICKS = 100  # fixed so expected figures hold on hosts with another SC_CLK_TCK
KSMD_PID = 37  # as in the `current` fixture


@dataclass
class ManualClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def copy_fixture(name: str, directory: Path) -> Roots:
    shutil.copytree(FIXTURES / name, directory / name)
    return Roots(str(directory / name / "sys"), str(directory / name / "proc"))


def rewrite(path: Path, text: str) -> None:
    """Replaces a fixture file's content in place, as a kernel file changes under a reader
    that holds it open. Not by truncating to zero and writing (write_text): ext4 starts
    writing such a file to disk when it is closed (auto_da_alloc), some 25 times slower,
    and the simulations rewrite thousands of them."""
    data = text.encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)


def write_full_scans(roots: Roots, count: int) -> None:
    write_ksm(roots, "full_scans", count)


def write_stat(
    roots: Roots,
    pid: int,
    *,
    utime: int,
    stime: int,
    comm: str = "ksmd",
    flags: int = PF_KTHREAD | 0x40,
    schedstat: bool = True,
) -> None:
    """A `<pid>/stat` line as the kernel writes it, with only the fields that matter set,
    and a `schedstat` with the same CPU time in nanoseconds (10 ms ticks), as a kernel with
    CONFIG_SCHED_INFO has it; without `schedstat` the file is removed."""
    directory = Path(roots.procfs) / str(pid)
    directory.mkdir(exist_ok=True)
    fields = [
        "S", "2", "0", "0", "0", "-1", str(flags), "0", "0", "0", "0", str(utime), str(stime),
        "0", "0", "25", "5", "1", "0", "26", "0", "0",
    ]  # fmt: skip
    rewrite(directory / "stat", f"{pid} ({comm}) {' '.join(fields)}\n")
    if schedstat:
        write_schedstat(roots, pid, (utime + stime) * 10_000_000)
    else:
        (directory / "schedstat").unlink(missing_ok=True)


def write_schedstat(roots: Roots, pid: int, cpu_ns: int, run_delay_ns: int = 81234) -> None:
    """As fs/proc/base.c writes it: time on a CPU, time waiting on a run queue (ns), timeslices."""
    rewrite(Path(roots.procfs) / str(pid) / "schedstat", f"{cpu_ns} {run_delay_ns} 17\n")


def write_ksm(roots: Roots, name: str, value: int) -> None:
    rewrite(Path(roots.sysfs) / "kernel" / "mm" / "ksm" / name, f"{value}\n")


# (seconds after the start, full_scans, ksmd utime + stime): the `current` fixture, then a
# scan completes, another one 20 s later costing 5 s of CPU, then 1 s at 30% of a CPU.
FED_SAMPLES = ((0.0, 42, 1235), (1.0, 43, 1260), (21.0, 44, 1760), (22.0, 44, 1790))


def sampled_collection(directory: Path, page_size: int | None = None) -> KsmCollection:
    """The `current` fixture after its sampler has seen FED_SAMPLES: every metric present."""
    roots = copy_fixture("current", directory)
    clock = ManualClock()
    collection = KsmCollection(HostReader(roots, page_size, clock=clock, clock_ticks=CLOCK_TICKS))
    start = clock.now
    for offset, full_scans, ticks in FED_SAMPLES:
        clock.now = start + offset
        write_full_scans(roots, full_scans)
        write_stat(roots, KSMD_PID, utime=25, stime=ticks - 25)
        collection.reader.sampler.tick()
    return collection


# The command names sources/rival_tuners.py finds the other tuners by, and a pid for each.
TUNER_PIDS = {"ksmtuned": 4342, "momd": 4343, "virt-handler": 4344}


def run_tuners(roots: Roots, *comms: str) -> dict[str, int]:
    """The other tuners named, running in the fixture tree: a process of that name each
    (status models a tuner's rule only where it runs). Their pids, by name."""
    for comm in comms:
        directory = Path(roots.procfs) / str(TUNER_PIDS[comm])
        directory.mkdir()
        (directory / "comm").write_text(comm + "\n")
    return {comm: TUNER_PIDS[comm] for comm in comms}

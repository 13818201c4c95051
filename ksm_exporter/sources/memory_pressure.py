"""`<procfs>/pressure/memory`: the share of time tasks stalled on memory (PSI).

kernel/sched/psi.c writes two lines, `some avg10=0.12 avg60=0.05 avg300=0.01 total=4711`
and `full ...`: the percentage of wall time over the last 10, 60 and 300 s in which at least
one task (`some`) or every non-idle task (`full`) waited for memory. Absent on kernels
without CONFIG_PSI or booted with psi=0 (the file then cannot be read: EOPNOTSUPP).
"""

from __future__ import annotations

from dataclasses import dataclass

from ksm_exporter.sources.kernel_file import read_bytes


@dataclass(frozen=True, slots=True)
class MemoryPressure:
    some_avg10: float  # percent of the last 10 s some task stalled on memory
    full_avg10: float | None  # the same for every task; None where the line is missing


def parse_memory_pressure(raw: bytes) -> MemoryPressure | None:
    averages: dict[str, float] = {}
    for line in raw.decode("ascii", errors="replace").splitlines():
        kind, _, rest = line.partition(" ")
        for field in rest.split():
            name, _, value = field.partition("=")
            if name == "avg10":
                try:
                    averages[kind] = float(value)
                except ValueError:
                    continue
    if "some" not in averages:
        return None
    return MemoryPressure(averages["some"], averages.get("full"))


def read_memory_pressure(procfs: str) -> MemoryPressure | None:
    """None where the kernel has no PSI, or the file does not parse. Never raises."""
    try:
        raw = read_bytes(f"{procfs}/pressure/memory")
    except OSError:
        return None
    return None if raw is None else parse_memory_pressure(raw)

"""`<procfs>/meminfo`: only MemTotal, the denominator of the saved-memory ratio."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ksm_exporter.sources.kernel_file import Problem, os_error_reason, read_bytes

_UNITS = {"kB": 1024, "": 1}


@dataclass(frozen=True, slots=True)
class MeminfoReading:
    mem_total_bytes: int | None
    problems: tuple[Problem, ...] = ()


def read_mem_total(procfs_root: str) -> MeminfoReading:
    path = os.path.join(procfs_root, "meminfo")
    try:
        raw = read_bytes(path)
    except OSError as err:
        return MeminfoReading(None, (Problem(path, "", os_error_reason(err)),))
    if raw is None:
        return MeminfoReading(None)
    for line in raw.split(b"\n"):
        if not line.startswith(b"MemTotal:"):
            continue
        parts = line[len(b"MemTotal:") :].split()
        text = b" ".join(parts).decode("ascii", errors="replace")
        if 1 <= len(parts) <= 2 and parts[0].isdigit():
            unit = parts[1].decode("ascii", errors="replace") if len(parts) == 2 else ""
            if unit in _UNITS and int(parts[0]) > 0:
                return MeminfoReading(int(parts[0]) * _UNITS[unit])
        return MeminfoReading(None, (Problem(path, text[:64], "MemTotal is not a size"),))
    return MeminfoReading(None, (Problem(path, "", "no MemTotal line"),))

"""The resident memory of the processes registered with KSM: memory that grows before ksmd
has visited it (a guest touching its RAM), where rmap items grow only as ksmd looks.

`<pid>/statm`'s second field is the resident set in pages (proc_pid_statm() in
fs/proc/array.c, get_mm_rss()): one small file, cheaper than `status`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from ksm_exporter.sources.kernel_file import PID_VANISHED, read_bytes


def resident_pages(procfs: str, pids: Iterable[int]) -> int | None:
    """The sum of the processes' resident pages; a process that exited meanwhile counts 0.
    None where one could not be read (permission, garbage): a sum short of one is no sum."""
    total = 0
    for pid in pids:
        try:
            raw = read_bytes(os.path.join(procfs, str(pid), "statm"))
        except OSError as err:
            if err.errno in PID_VANISHED:
                continue
            return None
        if raw is None:
            continue
        fields = raw.split()
        if len(fields) < 2 or not fields[1].isdigit():
            return None
        total += int(fields[1])
    return total

"""The memory figures ksmtuned and oVirt MOM decide by, for `status` to show what they would set.

Free memory as they count it is MemFree + Buffers + Cached of `<procfs>/meminfo`; the memory
committed to guests is the resident size of the processes whose command name is QEMU's
(their pattern), from `<procfs>/<pid>/statm`: here of the processes registered with KSM,
which QEMU guests are by default. A missing or garbled figure gives None.
"""

from __future__ import annotations

import os

from ksm_exporter.sources.kernel_file import KIB, read_bytes
from ksm_exporter.sources.process_identity import KSMTUNED_QEMU_COMM

FREE_FIELDS = (b"MemFree:", b"Buffers:", b"Cached:")


def read_free_bytes(procfs_root: str) -> int | None:
    try:
        raw = read_bytes(os.path.join(procfs_root, "meminfo"))
    except OSError:
        return None
    if raw is None:
        return None
    found: dict[bytes, int] = {}
    for line in raw.split(b"\n"):
        parts = line.split()
        if len(parts) == 3 and parts[0] in FREE_FIELDS and parts[1].isdigit() and parts[2] == b"kB":
            found[parts[0]] = int(parts[1]) * KIB
    return sum(found.values()) if len(found) == len(FREE_FIELDS) else None


def read_qemu_resident_bytes(procfs_root: str, pids: list[int], page_size: int) -> int:
    """Resident memory of those of `pids` whose comm is QEMU's; a vanished one adds nothing."""
    total = 0
    for pid in pids:
        try:
            comm = read_bytes(os.path.join(procfs_root, str(pid), "comm"))
            statm = read_bytes(os.path.join(procfs_root, str(pid), "statm"))
        except OSError:
            continue
        if comm is None or statm is None:
            continue
        if not KSMTUNED_QEMU_COMM.match(comm.decode("utf-8", "replace").strip()):
            continue
        fields = statm.split()
        if len(fields) >= 2 and fields[1].isdigit():
            total += int(fields[1]) * page_size
    return total

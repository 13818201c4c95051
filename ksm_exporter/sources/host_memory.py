"""The memory ksmtuned and oVirt MOM count as committed, for `status` to show what they
would set (their free memory is sources/meminfo.py's `free_bytes`).

The memory committed to guests is the resident size of the processes whose command name is QEMU's
(their pattern), from `<procfs>/<pid>/statm`: here of the processes registered with KSM,
which QEMU guests are by default.
"""

from __future__ import annotations

import os

from ksm_exporter.sources.kernel_file import read_bytes
from ksm_exporter.sources.process_identity import KSMTUNED_QEMU_COMM


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

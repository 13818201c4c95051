"""`<procfs>/vmstat`: the kernel's counters of KSM pages lost again after they merged.

mm/vmstat.c's vmstat_text names them: `cow_ksm` counts KSM pages copied because a process
wrote to one (do_wp_page() -> wp_page_copy() on a KSM folio), `ksm_swpin_copy` KSM pages
copied when swapped back in (ksm_might_need_to_copy()). Both are host-wide counts since boot:
they say that merged pages are being lost, not whose. A kernel without them (older, or built
without the VM event counters) leaves them out: absent, never 0.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ksm_exporter.sources.kernel_file import os_error_reason
from ksm_exporter.sources.smaps import Unreadable

KSM_COUNTERS = (b"cow_ksm", b"ksm_swpin_copy")
_READ_LIMIT = 1 << 16  # vmstat is about 5 KiB


@dataclass(frozen=True, slots=True)
class KsmEvents:
    """The counters the kernel writes; None for one it does not have."""

    cow_ksm: int | None
    ksm_swpin_copy: int | None


def parse_vmstat(raw: bytes) -> KsmEvents:
    found: dict[bytes, int] = {}
    for line in raw.split(b"\n"):
        name, _, value = line.partition(b" ")
        if name in KSM_COUNTERS and value.strip().isdigit():
            found[name] = int(value)
    return KsmEvents(found.get(b"cow_ksm"), found.get(b"ksm_swpin_copy"))


def read_ksm_events(procfs_root: str) -> KsmEvents | Unreadable:
    path = os.path.join(procfs_root, "vmstat")
    try:
        with open(path, "rb") as f:
            raw = f.read(_READ_LIMIT)
    except FileNotFoundError:
        return Unreadable(path, "absent")
    except OSError as err:
        return Unreadable(path, os_error_reason(err))
    return parse_vmstat(raw)

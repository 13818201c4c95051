"""CAP_DAC_READ_SEARCH, the one privilege the exporter can use, and nothing more.

`/proc/<pid>/ksm_stat` is mode 0400 and owned by the process's user: reading other users'
processes needs root or CAP_DAC_READ_SEARCH. systemd hands the capability over as an ambient
one. Docker and Kubernetes give added capabilities only to uid 0, so the container image
marks its interpreter with the capability as *permitted* (`python -m ksm_exporter.privileges
PATH`) and the exporter makes it effective at start-up. Without the effective bit in the file
an interpreter started where the capability is not allowed still runs, just without it.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys

CAP_DAC_READ_SEARCH = 2
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_VFS_CAP_REVISION_2 = 0x02000000


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def make_effective(capability: int = CAP_DAC_READ_SEARCH) -> bool:
    """Raise a permitted capability to effective; True when it is effective afterwards.

    Capabilities belong to a thread: call this before any thread starts, so that worker
    threads, created later, inherit it.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        return False
    word, mask = data[capability // 32], 1 << (capability % 32)
    if word.effective & mask:
        return True
    if not word.permitted & mask:
        return False
    word.effective |= mask
    return bool(libc.capset(ctypes.byref(header), data) == 0)


def file_capability(capability: int = CAP_DAC_READ_SEARCH) -> bytes:
    """A `security.capability` record: revision 2, no effective flag, permitted only."""
    permitted = [0, 0]
    permitted[capability // 32] = 1 << (capability % 32)
    return struct.pack("<5I", _VFS_CAP_REVISION_2, permitted[0], 0, permitted[1], 0)


def grant_to_file(path: str) -> None:
    os.setxattr(os.path.realpath(path), "security.capability", file_capability())


if __name__ == "__main__":
    for executable in sys.argv[1:]:
        grant_to_file(executable)

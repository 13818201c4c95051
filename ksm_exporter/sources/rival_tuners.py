"""Other programs that write KSM's settings, found by the name they run under.

ksmtuned is a shell script started as `ksmtuned` (its comm); oVirt MOM's daemon is `momd`;
KubeVirt's node handler, `virt-handler`, steers KSM on the nodes it is told to. A tuner that
ran beside one of them would undo its writes and have its own undone.
"""

from __future__ import annotations

import os

from ksm_exporter.sources.kernel_file import read_bytes

RIVAL_COMMS = {
    b"ksmtuned": "ksmtuned",
    b"momd": "oVirt MOM (momd)",
    b"virt-handler": "KubeVirt's virt-handler",
}


def running_rivals(procfs_root: str) -> list[tuple[int, str]]:
    """(pid, name) of every rival tuner running; never raises (a pid may vanish)."""
    try:
        pids = [name for name in os.listdir(procfs_root) if name.isdigit()]
    except OSError:
        return []
    found = []
    for pid in pids:
        try:
            comm = read_bytes(os.path.join(procfs_root, pid, "comm"))
        except OSError:
            continue
        if comm is None:
            continue
        name = RIVAL_COMMS.get(comm.strip())
        if name is not None:
            found.append((int(pid), name))
    return sorted(found)

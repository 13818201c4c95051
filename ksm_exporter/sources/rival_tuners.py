"""Other programs that write KSM's settings, found by the name they run under.

ksmtuned is a shell script started as `ksmtuned` (its comm); oVirt MOM's daemon is `momd`;
KubeVirt's node handler, `virt-handler`, steers KSM on the nodes it is told to. A tuner that
ran beside one of them would undo its writes and have its own undone.
"""

from __future__ import annotations

from collections.abc import Mapping

from ksm_exporter.sources.process_names import read_process_names

RIVAL_COMMS = {
    b"ksmtuned": "ksmtuned",
    b"momd": "oVirt MOM (momd)",
    b"virt-handler": "KubeVirt's virt-handler",
}


def running_rivals(procfs_root: str) -> list[tuple[int, str]]:
    """(pid, name) of every rival tuner running; never raises (a pid may vanish)."""
    return rivals_among(read_process_names(procfs_root))


def rivals_among(names: Mapping[int, bytes] | None) -> list[tuple[int, str]]:
    """As `running_rivals`, from the command names of a walk already made."""
    if names is None:
        return []
    return sorted((pid, RIVAL_COMMS[name]) for pid, name in names.items() if name in RIVAL_COMMS)

"""The mount options of the procfs the exporter reads: `hidepid=` hides other users'
processes from the listing whatever the reader's capabilities (only membership in the group
`gid=` names reveals them), so the per-process figures would silently cover only some."""

from __future__ import annotations

import os

from ksm_exporter.sources.kernel_file import Problem

HIDING = {"1", "2", "invisible", "noaccess"}  # hidepid values that hide or lock other users'


def hidepid_of(mountinfo: str, mount_point: str) -> str | None:
    """The `hidepid=` value of the proc mount at `mount_point` in /proc/self/mountinfo's
    text (proc_show_options() writes it among the super options, after " - proc ..."),
    None where that mount has none; the last mount at that point is the one seen."""
    found: str | None = None
    for line in mountinfo.splitlines():
        fields, _, tail = line.partition(" - ")
        parts, rest = fields.split(), tail.split()
        if len(parts) < 5 or len(rest) < 3 or parts[4] != mount_point or rest[0] != "proc":
            continue
        found = None
        for item in rest[2].split(","):
            name, _, value = item.partition("=")
            if name == "hidepid":
                found = value
    return found


def read_hidepid(procfs_root: str) -> str | None:
    """The hiding `hidepid=` value of the procfs at `procfs_root`, None where it hides
    nothing or cannot be read. Never raises."""
    try:
        with open(os.path.join(procfs_root, "self", "mountinfo")) as f:
            text = f.read()
    except OSError:
        return None
    value = hidepid_of(text, os.path.realpath(procfs_root))
    return value if value in HIDING else None


def hidepid_sentence(procfs_root: str, value: str) -> str:
    return (
        f"{procfs_root} is mounted with hidepid={value}: other users' processes are hidden "
        "whatever the capabilities; run the exporter in the group the mount's gid= option "
        "names (or mount procfs with gid=<a group of the exporter>) to see them"
    )


def hidepid_problems(procfs_root: str) -> tuple[Problem, ...]:
    """The hiding `hidepid=` of the procfs at `procfs_root` as a problem `status` lists
    beside the unreadable files: the per-process figures cover only some processes."""
    value = read_hidepid(procfs_root)
    if value is None:
        return ()
    path = os.path.join(procfs_root, "self", "mountinfo")
    return (Problem(path, f"hidepid={value}", hidepid_sentence(procfs_root, value)),)

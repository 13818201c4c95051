"""The running kernel's release, from `<procfs>/sys/kernel/osrelease` (what `uname -r`
prints), for what only a kernel version tells: behaviour the lab measured on some kernels."""

from __future__ import annotations

import os

from ksm_exporter.sources.kernel_file import BadValue, decode, read_bytes


def osrelease_path(procfs_root: str) -> str:
    return os.path.join(procfs_root, "sys", "kernel", "osrelease")


def read_release(procfs_root: str) -> str | None:
    """The release, None where the file is missing, unreadable or not text. Never raises."""
    try:
        raw = read_bytes(osrelease_path(procfs_root))
        return None if raw is None else decode(raw) or None
    except (OSError, BadValue):
        return None

"""cgroup v2 directories made for a test or a lab run, and removed after it even on failure.

The unified hierarchy is /sys/fs/cgroup where cgroup v2 alone is mounted, and
/sys/fs/cgroup/unified on a hybrid host; root may write either.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

HIERARCHIES = (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified"))


def unified_hierarchy() -> Path | None:
    """Where cgroup v2 is mounted (its root has cgroup.controllers), if anywhere."""
    return next((root for root in HIERARCHIES if (root / "cgroup.controllers").exists()), None)


def cgroup_v2_unwritable() -> str | None:
    """Why this process cannot make cgroup v2 directories and move processes into them, or
    None when it can."""
    root = unified_hierarchy()
    if root is None:
        return "cgroup v2 is not mounted"
    if not os.access(root / "cgroup.procs", os.W_OK) or not os.access(root, os.W_OK):
        return f"cannot write cgroup v2 at {root}"
    return None


@contextlib.contextmanager
def cgroup_v2(path: str) -> Iterator[Path]:
    """The cgroup v2 directory of `path` (as /proc/<pid>/cgroup shows it), made with any
    missing parents; after, what is left in it moves to the root and what was made is
    removed. Call `cgroup_v2_unwritable` first."""
    root = unified_hierarchy()
    assert root is not None, "cgroup v2 is not mounted"
    created: list[Path] = []
    directory = root
    try:
        for part in path.strip("/").split("/"):
            directory /= part
            if not directory.exists():
                directory.mkdir()
                created.append(directory)
        yield directory
    finally:
        if directory.exists():
            for pid in (directory / "cgroup.procs").read_text().split():
                with contextlib.suppress(OSError):  # gone since
                    (root / "cgroup.procs").write_text(pid)
        for made in reversed(created):
            made.rmdir()

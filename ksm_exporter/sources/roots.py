"""Where the kernel's filesystems are mounted: every path a reader opens is built here.

As prometheus/procfs's `FS`, rooted at a mount point. Tests point the roots at fixture trees;
a containerised exporter at the host's, mounted under /host (`--path.sysfs`,
`--path.procfs`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Roots:
    sysfs: str = "/sys"
    procfs: str = "/proc"

    @property
    def ksm_dir(self) -> str:
        """`<sysfs>/kernel/mm/ksm` (mm/ksm.c: ksm_attr_group, under mm_kobj)."""
        return os.path.join(self.sysfs, "kernel", "mm", "ksm")

    @property
    def meminfo(self) -> str:
        return os.path.join(self.procfs, "meminfo")

    def process(self, pid: int) -> str:
        """`<procfs>/<pid>`."""
        return os.path.join(self.procfs, str(pid))

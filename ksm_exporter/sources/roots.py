"""Where the kernel's filesystems are mounted: every reader starts from here.

Tests point these at fixture trees; a containerised exporter at the host's, mounted under
/host (`--path.sysfs`, `--path.procfs`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Roots:
    sysfs: str = "/sys"
    procfs: str = "/proc"

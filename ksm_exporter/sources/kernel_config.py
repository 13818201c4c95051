"""The kernel's tick rate, CONFIG_HZ, from the kernel's own configuration where it is readable.

ksmd sleeps whole jiffies between batches (msecs_to_jiffies() in ksm_scan_thread()), so the
length of a jiffy sets how long a full scan takes. The running kernel's configuration is at
`<procfs>/config.gz` (CONFIG_IKCONFIG_PROC) or, as distributions install it,
`/boot/config-<release>`, the release read from `<procfs>/sys/kernel/osrelease`. Neither
is always there: the caller then says HZ is assumed. Read once at start: it cannot change.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from dataclasses import dataclass
from typing import Literal

from ksm_exporter.sources.kernel_release import read_release

HzSource = Literal["config", "assumed"]
ASSUMED_HZ = 250  # the default of Debian's, Ubuntu's and Fedora's x86 kernels
CONFIG_LIMIT = 4 << 20  # a kernel configuration is some 300 KB; never read more
_HZ_LINE = re.compile(rb"^CONFIG_HZ=(\d+)$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class KernelHz:
    hz: int
    source: HzSource
    path: str | None = None  # the file it was read from


def parse_hz(config: bytes) -> int | None:
    """CONFIG_HZ from a kernel configuration's text, None without a sane one."""
    found = _HZ_LINE.search(config)
    if found is None:
        return None
    hz = int(found.group(1))
    return hz if 10 <= hz <= 10_000 else None


def _read_limited(path: str, compressed: bool) -> bytes | None:
    try:
        if compressed:
            with gzip.open(path, "rb") as f:
                return f.read(CONFIG_LIMIT)
        with open(path, "rb") as f:
            return f.read(CONFIG_LIMIT)
    except (OSError, EOFError, zlib.error):
        return None


def read_kernel_hz(procfs_root: str, boot_dir: str | None = None) -> KernelHz:
    """The running kernel's CONFIG_HZ, or ASSUMED_HZ marked as assumed. Never raises.

    `boot_dir` only where it is the running kernel's: not under another procfs root (a
    container's /boot is not its host's)."""
    candidates = [(os.path.join(procfs_root, "config.gz"), True)]
    release = read_release(procfs_root) if boot_dir is not None else None
    if boot_dir is not None and release and "/" not in release:
        candidates.append((os.path.join(boot_dir, f"config-{release}"), False))
    for path, compressed in candidates:
        config = _read_limited(path, compressed)
        hz = None if config is None else parse_hz(config)
        if hz is not None:
            return KernelHz(hz, "config", path)
    return KernelHz(ASSUMED_HZ, "assumed")

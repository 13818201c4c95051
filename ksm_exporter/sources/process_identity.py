"""Who a process is: its command name, QEMU guest name and cgroup v2 path.

Read only for processes registered with KSM, and only the parts asked for. A process may exit
at any moment: what cannot be read is left empty, never an error.
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass

from ksm_exporter.sources.kernel_file import read_bytes

# The parts of a process's identity that may become labels, in label order.
PROCESS_LABELS = ("comm", "vm", "cgroup")


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    """Empty strings where unknown: not a QEMU process, no cgroup v2 line, or gone."""

    comm: str = ""
    vm: str = ""
    cgroup: str = ""


def _read(path: str) -> bytes:
    try:
        return read_bytes(path) or b""
    except OSError:
        return b""


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="backslashreplace")


# ksmtuned's own test (its `pgrep` pattern on the command name), kept to model what ksmtuned
# counts as committed memory; the exporter names guests by `is_qemu` below.
KSMTUNED_QEMU_COMM = re.compile(r"^qemu(-(kvm|system-.+)|:.{1,11})$")


def is_qemu(argv0: bytes) -> bool:
    """qemu-system-*, qemu-kvm, and `kvm` as Proxmox starts it."""
    name = os.path.basename(argv0)
    return name.startswith(b"qemu") or name == b"kvm"


def split_qemu_options(value: bytes) -> list[bytes]:
    """QEMU's option syntax: comma-separated, a doubled comma is a literal comma."""
    parts: list[bytes] = []
    current = bytearray()
    i = 0
    while i < len(value):
        if value[i : i + 2] == b",,":
            current += b","
            i += 2
        elif value[i : i + 1] == b",":
            parts.append(bytes(current))
            current.clear()
            i += 1
        else:
            current += value[i : i + 1]
            i += 1
    parts.append(bytes(current))
    return parts


def qemu_guest_name(cmdline: bytes) -> str:
    """The guest name from `-name guest=NAME,...` or `-name NAME,...` on a QEMU command line.

    QEMU takes an option's argument only from the next argv element (`-name=x` is an invalid
    option there) and accepts `--name` as well as `-name`; the last `-name` wins, as in QEMU.
    """
    argv = cmdline.split(b"\0")
    if not argv or not is_qemu(argv[0]):
        return ""
    name = b""
    for option, argument in itertools.pairwise(argv):
        if option not in (b"-name", b"--name"):
            continue
        for i, part in enumerate(split_qemu_options(argument)):
            if part.startswith(b"guest="):
                name = part[len(b"guest=") :]
            elif i == 0 and b"=" not in part:
                name = part
    return _text(name)


def cgroup_v2_path(content: bytes) -> str:
    """The path of the `0::/path` line (unified hierarchy), also present on hybrid hosts."""
    for line in content.split(b"\n"):
        if line.startswith(b"0::"):
            return _text(line[3:])
    return ""


def read_identity(
    procfs_root: str, pid: int, comm: bool = True, vm: bool = True, cgroup: bool = True
) -> ProcessIdentity:
    directory = os.path.join(procfs_root, str(pid))
    return ProcessIdentity(
        comm=_text(_read(os.path.join(directory, "comm")).rstrip(b"\n")) if comm else "",
        vm=qemu_guest_name(_read(os.path.join(directory, "cmdline"))) if vm else "",
        cgroup=cgroup_v2_path(_read(os.path.join(directory, "cgroup"))) if cgroup else "",
    )

"""Who a process is: its command name, QEMU guest name and cgroup v2 path.

Every label is declared once in PROCESS_LABELS: its name, the file under `<procfs>/<pid>/`
it comes from and the parser of that file. The per-process families, the
`--collector.process.labels` choices, `--collector.process.always-include` and `status` all
follow the table, so one more label is one declaration (and its parser). Read only for
processes registered with KSM, and only the labels asked for, each file once. A process may
exit at any moment: what cannot be read is left empty, never an error.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from ksm_exporter.sources.kernel_file import read_bytes


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


def parse_comm(raw: bytes) -> str:
    return _text(raw.rstrip(b"\n"))


@dataclass(frozen=True, slots=True)
class ProcessLabel:
    """One label of a process's series: where it comes from and how it is read."""

    name: str
    file: str  # under <procfs>/<pid>/
    parse: Callable[[bytes], str]  # "" where the process has no such label


LABELS: tuple[ProcessLabel, ...] = (
    ProcessLabel("comm", "comm", parse_comm),
    ProcessLabel("vm", "cmdline", qemu_guest_name),
    ProcessLabel("cgroup", "cgroup", cgroup_v2_path),
)
# The labels a process's series may carry, in label order.
PROCESS_LABELS: tuple[str, ...] = tuple(label.name for label in LABELS)


class ProcessIdentity:
    """A process's labels by name; "" where unknown: not a QEMU process, no cgroup v2 line,
    gone, or not asked for."""

    __slots__ = ("labels",)

    def __init__(self, labels: Mapping[str, str] | None = None, **named: str) -> None:
        given = {**(labels or {}), **named}
        self.labels: dict[str, str] = {k: v for k, v in given.items() if v}

    def get(self, name: str) -> str:
        return self.labels.get(name, "")

    @property
    def comm(self) -> str:
        return self.get("comm")

    @property
    def vm(self) -> str:
        return self.get("vm")

    @property
    def cgroup(self) -> str:
        return self.get("cgroup")

    def as_dict(self, names: Collection[str] = PROCESS_LABELS) -> dict[str, str]:
        return {name: self.get(name) for name in names}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ProcessIdentity):
            return NotImplemented
        return self.labels == other.labels

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"ProcessIdentity({self.labels})"


def read_identity(
    procfs_root: str,
    pid: int,
    names: Collection[str] = PROCESS_LABELS,
    labels: tuple[ProcessLabel, ...] = LABELS,
) -> ProcessIdentity:
    """The labels named in `names`, each file read once however many labels it gives."""
    directory = os.path.join(procfs_root, str(pid))
    contents: dict[str, bytes] = {}
    found: dict[str, str] = {}
    for label in labels:
        if label.name not in names:
            continue
        if label.file not in contents:
            contents[label.file] = _read(os.path.join(directory, label.file))
        found[label.name] = label.parse(contents[label.file])
    return ProcessIdentity(found)

"""Who a process is: its command name, what its QEMU command line says about the guest
(name, Proxmox VMID, UUID, KubeVirt namespace: sources/qemu_command_line.py) and its cgroup
v2 path.

Every label is declared once in PROCESS_LABELS: its name, the file under `<procfs>/<pid>/`
it comes from and the parser of that file. The per-process families, the
`--collector.process.labels` choices, `--collector.process.always-include` and `status` all
follow the table, so one more label is one declaration (and its parser). Read only for
processes registered with KSM, and only the labels asked for, each file once. A process may
exit at any moment: what cannot be read is left empty, never an error.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from ksm_exporter.sources.kernel_file import read_bytes
from ksm_exporter.sources.qemu_command_line import (
    QemuGuest,
    is_qemu,
    parse_qemu_command_line,
    split_qemu_options,
)

__all__ = ["is_qemu", "split_qemu_options"]  # where the guest labels' parsers import them


def _read(path: str) -> bytes:
    try:
        return read_bytes(path) or b""
    except OSError:
        return b""


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="backslashreplace")


_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def _guest(cmdline: bytes) -> QemuGuest:
    return parse_qemu_command_line(cmdline[: cmdline.rfind(b"\0") + 1]) or QemuGuest()


def kubevirt_namespace(guest_name: str, cgroup: str) -> tuple[str, str]:
    """(namespace, VMI name) of a KubeVirt guest, else ("", guest_name).

    virt-launcher names the libvirt domain `<namespace>_<vmi>` (VMINamespaceKeyFunc) and
    KubeVirt splits it at the first `_` (SplitDomainName). A libvirt guest elsewhere may
    have a `_` in its name too, so the split is made only for a QEMU in a Kubernetes pod's
    cgroup (kubelet's `kubepods` slice or directory) whose first part is a DNS label, which
    a namespace is and which cannot hold `_`.
    """
    namespace, underscore, vmi = guest_name.partition("_")
    if underscore and vmi and "kubepods" in cgroup and _DNS_LABEL.fullmatch(namespace):
        return namespace, vmi
    return "", guest_name


def qemu_guest_name(cmdline: bytes, cgroup: bytes = b"") -> str:
    """The guest name from `-name guest=NAME,...` or `-name NAME,...`; KubeVirt's VMI name."""
    return kubevirt_namespace(_guest(cmdline).name, cgroup_v2_path(cgroup))[1]


def qemu_guest_namespace(cmdline: bytes, cgroup: bytes) -> str:
    return kubevirt_namespace(_guest(cmdline).name, cgroup_v2_path(cgroup))[0]


def qemu_vm_id(cmdline: bytes) -> str:
    return _guest(cmdline).vm_id


def qemu_uuid(cmdline: bytes) -> str:
    return _guest(cmdline).uuid


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
    files: tuple[str, ...]  # under <procfs>/<pid>/, their contents passed to parse in order
    parse: Callable[..., str]  # "" where the process has no such label


LABELS: tuple[ProcessLabel, ...] = (
    ProcessLabel("comm", ("comm",), parse_comm),
    ProcessLabel("vm", ("cmdline", "cgroup"), qemu_guest_name),
    ProcessLabel("vm_id", ("cmdline",), qemu_vm_id),
    ProcessLabel("vm_uuid", ("cmdline",), qemu_uuid),
    ProcessLabel("namespace", ("cmdline", "cgroup"), qemu_guest_namespace),
    ProcessLabel("cgroup", ("cgroup",), cgroup_v2_path),
)
# The labels a process's series may carry, in label order.
PROCESS_LABELS: tuple[str, ...] = tuple(label.name for label in LABELS)


@dataclass(frozen=True, slots=True, init=False)
class ProcessIdentity:
    """A process's labels by name; "" where unknown: not a QEMU process, no cgroup v2 line,
    gone, or not asked for."""

    labels: dict[str, str]
    guest_memory_bytes: int | None

    def __init__(
        self,
        labels: Mapping[str, str] | None = None,
        guest_memory_bytes: int | None = None,  # QEMU's -m; no label, a metric of its own
        **named: str,
    ) -> None:
        given = {**(labels or {}), **named}
        object.__setattr__(self, "labels", {k: v for k, v in given.items() if v})
        object.__setattr__(self, "guest_memory_bytes", guest_memory_bytes)

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
        for file in label.files:
            if file not in contents:
                contents[file] = _read(os.path.join(directory, file))
        found[label.name] = label.parse(*(contents[file] for file in label.files))
    if "cmdline" not in contents:  # the guest's size is read whatever the labels
        contents["cmdline"] = _read(os.path.join(directory, "cmdline"))
    return ProcessIdentity(found, _guest(contents["cmdline"]).memory_bytes)

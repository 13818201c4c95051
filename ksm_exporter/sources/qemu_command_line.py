"""What a QEMU command line says about its guest: name, Proxmox VMID, UUID, memory size.

Each platform writes these options in its own way, and each is parsed as QEMU itself does:

- Proxmox VE (qemu-server, PVE/QemuServer.pm `config_to_command`): `/usr/bin/kvm -id 100
  -name 'web1,debug-threads=on' ... -m 4096` (or `-m size=4096,slots=255,maxmem=...M` with
  memory hotplug); `-id` is an option of Proxmox's own QEMU build.
- libvirt, and so OpenStack Nova and oVirt (src/qemu/qemu_command.c): `-name
  guest=instance-00000001,debug-threads=on -uuid <domain UUID> -m size=2097152k,slots=...`.
- KubeVirt (virt-launcher, through libvirt): the domain is named `<namespace>_<vmi>`
  (`VMINamespaceKeyFunc`); see `kubevirt_namespace` in process_identity.
- Kata Containers: `-name sandbox-<id>`.

Anything malformed is left out (empty, or None), never an error: a command line is whatever
the process wrote, up to the size the reader takes of it.
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass
from fractions import Fraction

_UINT64_MAX = 2**64 - 1
# QEMU's qemu_strtosz suffixes (util/cutils.c), case-insensitive, powers of 1024.
_SIZE_SUFFIXES = {"B": 0, "K": 10, "M": 20, "G": 30, "T": 40, "P": 50, "E": 60}
_SIZE = re.compile(rb"(\d+)(?:\.(\d+))?([bkmgtpeBKMGTPE]?)")
# qemu_uuid_parse (util/uuid.c): exactly 8-4-4-4-12 hexadecimal digits.
_UUID = re.compile(rb"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_VMID = re.compile(rb"\d{1,20}")


@dataclass(frozen=True, slots=True)
class QemuGuest:
    """Empty strings and None where the command line does not say, or says it malformed."""

    name: str = ""
    vm_id: str = ""
    uuid: str = ""
    memory_bytes: int | None = None


def text(raw: bytes) -> str:
    """Bytes as label text: what is not UTF-8 is shown as backslash escapes."""
    return raw.decode("utf-8", errors="backslashreplace")


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


def _implied_or_named(argument: bytes, implied: bytes) -> bytes | None:
    """The value of option `implied` in a QemuOpts argument: `implied=X` anywhere, or a first
    part without `=` (QEMU's implied_opt_name); the last one given wins, as in QEMU."""
    value = None
    prefix = implied + b"="
    for i, part in enumerate(split_qemu_options(argument)):
        if part.startswith(prefix):
            value = part[len(prefix) :]
        elif i == 0 and b"=" not in part:
            value = part
    return value


def qemu_size_bytes(value: bytes) -> int | None:
    """The memory size of `-m` as QEMU's parse_memory_options reads it (softmmu/vl.c): a
    value ending in a digit is in MiB ("legacy suffix-less format"), otherwise qemu_strtosz's
    suffix B/K/M/G/T/P/E applies, fractions allowed ("1.5G"). 0 means QEMU's default size,
    which the command line does not tell, so it is None, as is anything QEMU would reject.
    """
    match = _SIZE.fullmatch(value)
    if match is None:
        return None
    whole, fraction, suffix = match.groups()
    unit = suffix.upper().decode() if suffix else "M"
    if fraction is not None and unit == "B":
        return None  # qemu_strtosz: no fraction of a byte
    number = Fraction(int(whole))
    if fraction is not None:
        number += Fraction(int(fraction), 10 ** len(fraction))
    size = int(number * (1 << _SIZE_SUFFIXES[unit]))
    if size == 0 or size > _UINT64_MAX:
        return None
    return size


def _option_arguments(argv: list[bytes], names: tuple[bytes, ...]) -> list[bytes]:
    """Arguments of an option, in order. QEMU takes an option's argument only from the next
    argv element (`-name=x` is an invalid option) and accepts `--name` as well as `-name`."""
    return [argument for option, argument in itertools.pairwise(argv) if option in names]


def parse_qemu_command_line(cmdline: bytes) -> QemuGuest | None:
    """The guest a QEMU command line (`<procfs>/<pid>/cmdline`, NUL-separated) describes;
    None when argv[0] is not QEMU."""
    argv = cmdline.split(b"\0")
    if not argv or not is_qemu(argv[0]):
        return None
    name = b""
    for argument in _option_arguments(argv, (b"-name", b"--name")):
        name = _implied_or_named(argument, b"guest") or name
    vm_id = b""
    for argument in _option_arguments(argv, (b"-id", b"--id")):
        vm_id = argument if _VMID.fullmatch(argument) else b""
    uuid = b""
    for argument in _option_arguments(argv, (b"-uuid", b"--uuid")):
        uuid = argument.lower() if _UUID.fullmatch(argument) else b""
    # -m merges into one set of options: a later -m's size replaces an earlier one's.
    size: bytes | None = None
    for argument in _option_arguments(argv, (b"-m", b"--m")):
        size = _implied_or_named(argument, b"size") or size
    return QemuGuest(
        name=text(name),
        vm_id=vm_id.decode(),
        uuid=uuid.decode(),
        memory_bytes=qemu_size_bytes(size) if size is not None else None,
    )


# qapi_bool_parse() (qapi/qapi-util.c): the words QEMU takes for off.
_OFF = frozenset((b"off", b"no", b"false", b"n"))


def _option_value(argument: bytes, name: bytes) -> bytes | None:
    """The last `name=value` of a QemuOpts argument, or None."""
    prefix = name + b"="
    value = None
    for part in split_qemu_options(argument):
        if part.startswith(prefix):
            value = part[len(prefix) :]
    return value


def qemu_mem_merge_off(cmdline: bytes) -> str | None:
    """The argument by which a QEMU command line keeps its guest's RAM out of KSM, or None.

    QEMU registers guest RAM with madvise(MADV_MERGEABLE) unless the machine's `mem-merge`
    property is off (`-machine mem-merge=off`, as libvirt writes for `<nosharepages/>` and
    Proxmox for `allow-ksm: 0`) or the memory backend's `merge` is (`-object
    memory-backend-ram,merge=off`; a backend's merge defaults to the machine's: host_memory_
    backend_memory_complete() in backends/hostmem.c). The last `-machine` value wins.
    """
    argv = cmdline.split(b"\0")
    if not argv or not is_qemu(argv[0]):
        return None
    found = None
    for argument in _option_arguments(argv, (b"-machine", b"--machine", b"-M", b"--M")):
        value = _option_value(argument, b"mem-merge")
        if value is not None:
            found = (b"-machine mem-merge=" + value) if value in _OFF else None
    for argument in _option_arguments(argv, (b"-object", b"--object")):
        if argument.startswith(b"memory-backend-") and _option_value(argument, b"merge") in _OFF:
            found = b"-object " + argument
    return text(found) if found is not None else None

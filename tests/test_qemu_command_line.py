"""Guests on each platform's QEMU command line, as qemu-server, libvirt and KubeVirt write
them; malformed options are left out, never an error."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ksm_exporter.sources.process_identity import kubevirt_namespace
from ksm_exporter.sources.qemu_command_line import (
    QemuGuest,
    parse_qemu_command_line,
    qemu_size_bytes,
    split_qemu_options,
)

pytestmark = pytest.mark.unit

MiB = 1 << 20
GiB = 1 << 30
UUID = "414426ac-8f31-4c6d-9c7e-0a1b2c3d4e5f"


def cmdline(*argv: str | bytes) -> bytes:
    return b"".join((a if isinstance(a, bytes) else a.encode()) + b"\0" for a in argv)


# Shaped as PVE/QemuServer.pm's config_to_command writes it.
PROXMOX = cmdline(
    "/usr/bin/kvm", "-id", "100", "-name", "web1,debug-threads=on", "-no-shutdown",
    "-smbios", "type=1,uuid=b77a12c4-0000-4000-8000-000000000001", "-m", "4096",
)  # fmt: skip
# Shaped as libvirt's qemu_command.c writes it (OpenStack Nova's instance).
LIBVIRT = cmdline(
    "/usr/bin/qemu-kvm", "-name", "guest=instance-00000001,debug-threads=on", "-S",
    "-machine", "pc-q35-8.2,usb=off", "-m", "size=2097152k,slots=4,maxmem=8388608k",
    "-uuid", UUID.upper(), "-smp", "2",
)  # fmt: skip
KUBEVIRT = cmdline(
    "/usr/libexec/qemu-kvm", "-name", "guest=default_vmi-ephemeral,debug-threads=on", "-m", "1G"
)


@pytest.mark.parametrize(
    ("raw", "guest"),
    [
        (PROXMOX, QemuGuest(name="web1", vm_id="100", memory_bytes=4096 * MiB)),
        (LIBVIRT, QemuGuest(name="instance-00000001", uuid=UUID, memory_bytes=2 * GiB)),
        (KUBEVIRT, QemuGuest(name="default_vmi-ephemeral", memory_bytes=GiB)),
        (cmdline("qemu-system-x86_64", "-name", "sandbox-3f2a"), QemuGuest(name="sandbox-3f2a")),
        # QEMU merges repeated -m and -name: the later value wins, an absent one keeps.
        (cmdline("kvm", "-m", "1G", "-m", "2G"), QemuGuest(memory_bytes=2 * GiB)),
        (cmdline("kvm", "-m", "1G", "-m", "slots=2"), QemuGuest(memory_bytes=GiB)),
        (cmdline("kvm", "-name", "a", "-name", "debug-threads=on"), QemuGuest(name="a")),
        (cmdline("kvm", "-name", "a,,b"), QemuGuest(name="a,b")),
        (
            cmdline("kvm", "--uuid", UUID, "--m", "512"),
            QemuGuest(uuid=UUID, memory_bytes=512 * MiB),
        ),
        # Malformed: left out, the rest kept.
        (cmdline("kvm", "-name", "x", "-m", "lots", "-uuid", "414426ac"), QemuGuest(name="x")),
        (cmdline("kvm", "-id", "abc", "-m", "0"), QemuGuest()),
        (cmdline("kvm", "-m"), QemuGuest()),
        (cmdline("kvm", "-name", b"caf\xe9"), QemuGuest(name="caf\\xe9")),
    ],
)
def test_platform_command_lines(raw: bytes, guest: QemuGuest) -> None:
    assert parse_qemu_command_line(raw) == guest


def test_not_qemu() -> None:
    assert parse_qemu_command_line(cmdline("find", "/", "-name", "x", "-m", "1G")) is None
    assert parse_qemu_command_line(b"") is None


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (b"4096", 4096 * MiB),  # QEMU's legacy suffix-less format: MiB
        (b"4G", 4 * GiB),
        (b"4g", 4 * GiB),
        (b"2048M", 2 * GiB),
        (b"4194304k", 4 * GiB),
        (b"1.5G", 3 * GiB // 2),
        (b"1.5", 3 * MiB // 2),
        (b"1073741824B", GiB),
        (b"1.5B", None),
        (b"0", None),
        (b"16E", None),  # beyond 64 bits
        (b"0x10", None),
        (b"", None),
        (b"-1G", None),
        (b"4 G", None),
    ],
)
def test_sizes_as_qemu_reads_them(value: bytes, size: int | None) -> None:
    assert qemu_size_bytes(value) == size


@pytest.mark.parametrize(
    ("name", "cgroup", "split"),
    [
        (
            "default_vmi-ephemeral",
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f1e.slice/"
            "cri-containerd-4d2a.scope",
            ("default", "vmi-ephemeral"),
        ),
        ("ns_a_b", "/kubepods/burstable/pod1/abc", ("ns", "a_b")),  # the first `_` splits
        (
            "default_vmi",
            "/machine.slice/machine-qemu\\x2d1\\x2ddefault_vmi.scope",
            ("", "default_vmi"),
        ),
        ("Not_A_Namespace", "/kubepods/pod1", ("", "Not_A_Namespace")),
        ("nounderscore", "/kubepods/pod1", ("", "nounderscore")),
        ("ns_", "/kubepods/pod1", ("", "ns_")),
    ],
)
def test_kubevirt_namespace(name: str, cgroup: str, split: tuple[str, str]) -> None:
    assert kubevirt_namespace(name, cgroup) == split


@given(st.lists(st.binary(max_size=40).filter(lambda b: b"\0" not in b), max_size=30))
def test_any_command_line_parses_without_error(argv: list[bytes]) -> None:
    guest = parse_qemu_command_line(b"\0".join([b"qemu-kvm", *argv]) + b"\0")
    assert guest is not None
    assert guest.memory_bytes is None or 0 < guest.memory_bytes < 2**64
    assert guest.vm_id == "" or guest.vm_id.isdigit()
    assert guest.uuid == "" or len(guest.uuid) == 36


@given(st.binary(max_size=60).filter(lambda b: b"\0" not in b))
def test_any_size_is_none_or_positive(value: bytes) -> None:
    size = qemu_size_bytes(value)
    assert size is None or 0 < size < 2**64


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\0"), max_size=30))
def test_a_name_with_doubled_commas_comes_back_whole(name: str) -> None:
    doubled = name.encode().replace(b",", b",,")
    guest = parse_qemu_command_line(cmdline("kvm", "-name", b"guest=" + doubled + b",x=y"))
    assert guest is not None
    assert guest.name == name


# Non-empty parts: two commas in a row would be QEMU's literal comma.
@given(st.lists(st.binary(min_size=1, max_size=10).filter(lambda b: b"," not in b), min_size=1))
def test_split_undoes_the_join(parts: list[bytes]) -> None:
    assert split_qemu_options(b",".join(parts)) == parts


def test_a_long_name_is_served_whole() -> None:
    name = "n" * (1 << 20)
    guest = parse_qemu_command_line(cmdline("kvm", "-name", name, "-m", "1G"))
    assert guest == QemuGuest(name=name, memory_bytes=GiB)

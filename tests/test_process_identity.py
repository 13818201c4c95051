"""Who a process is: command name, QEMU guest name, cgroup v2 path."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.paths import FIXTURES
from ksm_exporter.sources.kernel_file import READ_LIMIT
from ksm_exporter.sources.process_identity import (
    ProcessIdentity,
    cgroup_v2_path,
    qemu_guest_name,
    read_identity,
)

pytestmark = pytest.mark.unit

CURRENT = str(FIXTURES / "current" / "proc")


@pytest.mark.parametrize(
    ("pid", "expected"),
    [
        (
            1201,
            ProcessIdentity(
                comm="qemu-system-x86",
                vm="web01",
                cgroup="/machine.slice/machine-qemu\\x2d1\\x2dweb01.scope/libvirt/emulator",
                guest_memory_bytes=4194304 * 1024,  # libvirt's -m size=4194304k
            ),
        ),
        (1302, ProcessIdentity(comm="kvm", vm="db02", cgroup="/qemu.slice/102.scope")),
        (
            1403,
            ProcessIdentity(
                comm="qemu-system-aar",
                vm="lab,test",
                cgroup="/machine.slice/machine-qemu\\x2d3\\x2dlab.scope/libvirt/emulator",
            ),
        ),
        (
            2200,
            ProcessIdentity(
                comm="nginx",
                cgroup="/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f1e.slice/"
                "cri-containerd-4d2a.scope",
            ),
        ),
        (2300, ProcessIdentity(comm="find", cgroup="/user.slice/user-1000.slice/session-3.scope")),
        (2, ProcessIdentity(comm="kthreadd", cgroup="/")),
        (99999, ProcessIdentity()),  # gone
    ],
)
def test_fixture_identities(pid: int, expected: ProcessIdentity) -> None:
    assert read_identity(CURRENT, pid) == expected


def test_only_the_parts_asked_for_are_read() -> None:
    assert read_identity(CURRENT, 1201, ("vm",)) == ProcessIdentity(
        vm="web01", guest_memory_bytes=4 << 30
    )


@pytest.mark.parametrize(
    ("argv", "guest"),
    [
        ([b"/usr/bin/qemu-system-x86_64", b"-name", b"guest=web01,debug-threads=on"], "web01"),
        ([b"qemu-system-x86_64", b"-name", b"plain"], "plain"),
        ([b"/usr/bin/kvm", b"-name", b"db02,debug-threads=on"], "db02"),
        ([b"qemu-kvm", b"--name", b"debug-threads=on,guest=late"], "late"),
        ([b"qemu-kvm", b"-name", b"guest=a,,b"], "a,b"),
        ([b"qemu-kvm", b"-name", b"first", b"-name", b"second"], "second"),
        ([b"qemu-kvm", b"-name=not-a-qemu-form"], ""),
        ([b"qemu-kvm", b"-name"], ""),
        ([b"qemu-kvm", b"-name", b"guest=caf\xc3\xa9"], "caf\u00e9"),
        ([b"find", b"/", b"-name", b"foo"], ""),
        ([b""], ""),
    ],
)
def test_qemu_guest_name(argv: list[bytes], guest: str) -> None:
    assert qemu_guest_name(b"\0".join(argv) + b"\0") == guest


@pytest.mark.parametrize(
    ("content", "path"),
    [
        (b"0::/system.slice/redis.service\n", "/system.slice/redis.service"),
        (b"12:memory:/x\n1:name=systemd:/y\n0::/z\n", "/z"),
        (b"12:memory:/x\n", ""),
        (b"", ""),
    ],
)
def test_cgroup_v2_path(content: bytes, path: str) -> None:
    assert cgroup_v2_path(content) == path


def test_unreadable_parts_are_empty(tmp_path: Path) -> None:
    (tmp_path / "5").mkdir()
    (tmp_path / "5" / "comm").mkdir()  # EISDIR
    (tmp_path / "5" / "cgroup").write_text("0::/a\n")
    assert read_identity(str(tmp_path), 5) == ProcessIdentity(cgroup="/a")


def test_a_command_line_cut_at_the_read_limit_drops_its_cut_argument(tmp_path: Path) -> None:
    """A 1 MiB command line is read up to 64 KiB: an argument cut there must not count."""
    (tmp_path / "7").mkdir()
    head = b"qemu-kvm\0-name\0guest=big\0"
    cut = b"-uuid\0" + b"414426ac-8f31-4c6d-9c7e-0a1b2c3d4e5f\0"
    filler = b"x" * (READ_LIMIT - len(head) - len(cut) + 10) + b"\0"
    (tmp_path / "7" / "cmdline").write_bytes(head + filler + cut + b"y" * (1 << 20) + b"\0")
    assert read_identity(str(tmp_path), 7) == ProcessIdentity(vm="big")


def test_kubevirt_guest_in_its_pod(tmp_path: Path) -> None:
    (tmp_path / "8").mkdir()
    (tmp_path / "8" / "cmdline").write_bytes(
        b"/usr/libexec/qemu-kvm\0-name\0guest=tenant-a_db-1,debug-threads=on\0-m\x002048M\x00"
    )
    (tmp_path / "8" / "cgroup").write_text(
        "0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-ab.scope\n"
    )
    assert read_identity(str(tmp_path), 8, ("vm", "namespace")) == ProcessIdentity(
        vm="db-1", namespace="tenant-a", guest_memory_bytes=2 << 30
    )


def test_proxmox_and_libvirt_guests(tmp_path: Path) -> None:
    (tmp_path / "9").mkdir()
    (tmp_path / "9" / "cmdline").write_bytes(
        b"/usr/bin/kvm\0-id\x00100\x00-name\0web1,debug-threads=on\0-m\x004096\x00"
    )
    (tmp_path / "9" / "cgroup").write_text("0::/qemu.slice/100.scope\n")
    assert read_identity(str(tmp_path), 9) == ProcessIdentity(
        vm="web1", vm_id="100", cgroup="/qemu.slice/100.scope", guest_memory_bytes=4096 << 20
    )
    (tmp_path / "10").mkdir()
    (tmp_path / "10" / "cmdline").write_bytes(
        b"/usr/bin/qemu-kvm\0-name\0guest=instance-00000001,debug-threads=on\0"
        b"-uuid\x00414426AC-8F31-4C6D-9C7E-0A1B2C3D4E5F\0"
    )
    assert read_identity(str(tmp_path), 10, ("vm", "vm_uuid")) == ProcessIdentity(
        vm="instance-00000001", vm_uuid="414426ac-8f31-4c6d-9c7e-0a1b2c3d4e5f"
    )

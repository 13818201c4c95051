"""Who a process is: command name, QEMU guest name, cgroup v2 path."""

from __future__ import annotations

from pathlib import Path

import pytest

from ksm_exporter.sources.process_identity import (
    ProcessIdentity,
    cgroup_v2_path,
    qemu_guest_name,
    read_identity,
)
from tests.support.paths import FIXTURES

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
    assert read_identity(CURRENT, 1201, ("vm",)) == ProcessIdentity(vm="web01")


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

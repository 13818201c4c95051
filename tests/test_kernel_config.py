"""CONFIG_HZ of the running kernel from its configuration: /proc/config.gz as
CONFIG_IKCONFIG_PROC serves it, or /boot/config-<release> as distributions install it."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from ksm_exporter.sources.kernel_config import ASSUMED_HZ, KernelHz, read_kernel_hz

pytestmark = pytest.mark.unit

CONFIG = b"# CONFIG_HZ_100 is not set\nCONFIG_HZ_300=y\nCONFIG_HZ=300\nCONFIG_HZ_PERIODIC=n\n"


def test_hz_from_proc_config_gz(tmp_path: Path) -> None:
    (tmp_path / "config.gz").write_bytes(gzip.compress(CONFIG))
    assert read_kernel_hz(str(tmp_path)) == KernelHz(300, "config", str(tmp_path / "config.gz"))


def test_hz_from_boot_config_of_the_running_release(tmp_path: Path) -> None:
    proc, boot = tmp_path / "proc", tmp_path / "boot"
    (proc / "sys" / "kernel").mkdir(parents=True)
    boot.mkdir()
    (proc / "sys" / "kernel" / "osrelease").write_text("6.18.0-test\n")
    (boot / "config-6.18.0-other").write_bytes(b"CONFIG_HZ=1000\n")
    (boot / "config-6.18.0-test").write_bytes(CONFIG)
    assert read_kernel_hz(str(proc), str(boot)).hz == 300
    # Under another procfs root (a container's), /boot is not its kernel's: not read.
    assert read_kernel_hz(str(proc)) == KernelHz(ASSUMED_HZ, "assumed")


@pytest.mark.parametrize("content", [b"", b"garbage\x00\xff", b"CONFIG_HZ=0\n", b"CONFIG_HZ=abc\n"])
def test_unreadable_or_odd_configuration_means_assumed(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "config.gz").write_bytes(content)  # not gzip, or gzip of nothing sane
    assert read_kernel_hz(str(tmp_path)) == KernelHz(ASSUMED_HZ, "assumed")
    (tmp_path / "config.gz").write_bytes(gzip.compress(content))
    assert read_kernel_hz(str(tmp_path)) == KernelHz(ASSUMED_HZ, "assumed")

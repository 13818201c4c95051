"""Booting a lab kernel under QEMU's software emulation (TCG: no KVM needed)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from lab.kernels import Unavailable

QEMU = "qemu-system-x86_64"
BOOT_TIMEOUT = 180.0


def qemu() -> str:
    path = shutil.which(QEMU)
    if path is None:
        raise Unavailable(f"{QEMU} is missing: apt-get install qemu-system-x86")
    return path


def tcg_command(
    vmlinuz: Path, initrd: Path, memory_mib: int, append: str = "", host_merges: bool = False
) -> list[str]:
    """QEMU emulating a whole machine in software, with no display and no default devices.

    QEMU marks guest RAM MADV_MERGEABLE unless told otherwise (mem-merge defaults to on):
    a guest whose KSM is measured inside it keeps its RAM out of the host's KSM, so it never
    changes what the host's own tests measure; only a guest the host is to merge says so.
    """
    return [
        qemu(),
        "-accel", "tcg",
        "-machine", f"mem-merge={'on' if host_merges else 'off'}",
        # Without CMPXCHG16B: 6.12's allocator uses it with a %gs prefix, which QEMU 7.2's
        # emulation got wrong here now and then (a double fault with garbage flags).
        "-cpu", "max,-cx16",
        "-smp", "1",
        "-m", str(memory_mib),
        "-nodefaults",
        "-display", "none",
        "-no-reboot",
        "-kernel", str(vmlinuz),
        "-initrd", str(initrd),
        # A guest kernel oops panics, and the panic ends QEMU (-no-reboot), rather than hang.
        "-append", f"console=ttyS0 oops=panic panic=-1 quiet {append}".strip(),
    ]  # fmt: skip


@dataclass(frozen=True)
class GuestRun:
    console: str  # the guest's ttyS0
    data: str  # what the guest wrote to ttyS1


def run_guest(
    vmlinuz: Path,
    initrd: Path,
    work: Path,
    memory_mib: int = 768,
    timeout: float = BOOT_TIMEOUT,
) -> GuestRun:
    """Boot, let /init do its work and power off within `timeout` seconds; its console and
    second serial port."""
    console, data = work / "console.txt", work / "data.txt"
    command = [
        *tcg_command(vmlinuz, initrd, memory_mib),
        "-serial", f"file:{console}",
        "-serial", f"file:{data}",
    ]  # fmt: skip
    try:
        subprocess.run(command, timeout=timeout, check=True, capture_output=True)
    except subprocess.TimeoutExpired as err:
        tail = console.read_text(errors="replace")[-2000:] if console.exists() else ""
        raise AssertionError(f"guest did not power off in {timeout:g} s:\n{tail}") from err
    except subprocess.CalledProcessError as err:
        raise AssertionError(f"{QEMU} failed: {err.stderr.decode(errors='replace')}") from err
    return GuestRun(console.read_text(errors="replace"), data.read_text(errors="replace"))

"""Measuring each lab kernel: Debian's kernels booted as guests, and this host's own kernel."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from lab.captures import REPO, Capture
from lab.initramfs import initramfs
from lab.kernels import CACHE, SUITES, Unavailable, fetch
from lab.qemu import run_guest
from tests.support.real_ksm import host_in_use, ksm_lock, ksm_writable

HOST = "host"  # the kernel this machine runs, measured without a guest
LAB_KERNELS = (*SUITES, HOST)
CAPTURE_COMMAND = "-m lab.capture --output /dev/ttyS1"
EMULATION_CRASH = "Kernel panic"


def measure_guest(suite: str, work: Path) -> Capture:
    """Boot the suite's kernel with the exporter packed in, and take its capture."""
    kernel = fetch(suite)
    image = initramfs(CACHE, work, CAPTURE_COMMAND)
    run = run_guest(kernel.vmlinuz, image, work)
    if EMULATION_CRASH in run.console:
        # Seen about once in ten boots of 6.12 under QEMU 7.2's TCG: a double fault in the
        # guest kernel's allocator, with garbage flags. Once more settles it.
        print(f"{kernel.release}: guest kernel crashed under emulation; booting again",
              file=sys.stderr)  # fmt: skip
        run = run_guest(kernel.vmlinuz, image, work)
    if not run.data.strip():
        raise AssertionError(f"{kernel.release} wrote no capture; its console:\n{run.console}")
    return Capture.from_json(run.data)


def measure_host(work: Path) -> Capture:
    """The same measurement on this host's kernel, holding the host KSM lock."""
    reason = ksm_writable()
    if reason is not None:
        raise Unavailable(reason)
    output = work / "host.json"
    with ksm_lock():
        in_use = host_in_use()
        if in_use is not None:
            raise Unavailable(in_use)
        result = subprocess.run(
            [sys.executable, "-m", "lab.capture", "--output", str(output)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    if result.returncode != 0:
        raise AssertionError(f"capture on this host failed:\n{result.stderr}")
    return Capture.from_json(output.read_text())


def measure(kernel: str) -> Capture:
    """`kernel` is a Debian suite or HOST; raises Unavailable when it cannot be had here."""
    with tempfile.TemporaryDirectory(prefix="ksm-lab-") as work:
        if kernel == HOST:
            return measure_host(Path(work))
        return measure_guest(kernel, Path(work))

"""Measuring each lab kernel: Debian's kernels booted as guests, and this host's own kernel."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from harness.real_ksm import host_in_use, ksm_lock, ksm_writable
from lab.captures import REPO, Capture
from lab.initramfs import initramfs
from lab.kernels import CACHE, SUITES, Unavailable, fetch
from lab.qemu import BOOT_TIMEOUT, run_guest

HOST = "host"  # the kernel this machine runs, measured without a guest
LAB_KERNELS = (*SUITES, HOST)
EMULATION_CRASH = "Kernel panic"

T = TypeVar("T")


@dataclass(frozen=True)
class Measurement(Generic[T]):
    """A module that measures the kernel it runs on and writes one JSON document to --output
    (in a guest, its second serial port), and how to read that document."""

    module: str  # run as `python -m`
    what: str  # its document, as failures name it
    output: str  # the document's file name on this host
    guest_timeout: float  # seconds for the guest to boot, measure and power off
    host_timeout: float
    parse: Callable[[str], T]


CAPTURE = Measurement("lab.capture", "capture", "host.json", BOOT_TIMEOUT, 300.0, Capture.from_json)


def measure_guest(measurement: Measurement[T], suite: str, work: Path) -> T:
    """Boot the suite's kernel with the project packed in, and take the module's document."""
    kernel = fetch(suite)
    image = initramfs(CACHE, work, f"-m {measurement.module} --output /dev/ttyS1")
    run = run_guest(kernel.vmlinuz, image, work, timeout=measurement.guest_timeout)
    if EMULATION_CRASH in run.console:
        # Seen about once in ten boots of 6.12 under QEMU 7.2's TCG: a double fault in the
        # guest kernel's allocator, with garbage flags. Once more settles it.
        print(f"{kernel.release}: guest kernel crashed under emulation; booting again",
              file=sys.stderr)  # fmt: skip
        run = run_guest(kernel.vmlinuz, image, work, timeout=measurement.guest_timeout)
    if not run.data.strip():
        raise AssertionError(f"{kernel.release} wrote no {measurement.what}; its console:\n"
                             f"{run.console[-4000:]}")  # fmt: skip
    return measurement.parse(run.data)


def measure_host(measurement: Measurement[T], work: Path) -> T:
    """The same measurement on this host's kernel, holding the host KSM lock."""
    reason = ksm_writable()
    if reason is not None:
        raise Unavailable(reason)
    output = work / measurement.output
    with ksm_lock():
        in_use = host_in_use()
        if in_use is not None:
            raise Unavailable(in_use)
        result = subprocess.run(
            [sys.executable, "-m", measurement.module, "--output", str(output)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            capture_output=True,
            text=True,
            timeout=measurement.host_timeout,
            check=False,
        )
    if result.returncode != 0:
        raise AssertionError(f"{measurement.what} on this host failed:\n{result.stderr}")
    return measurement.parse(output.read_text())


def measure_on(measurement: Measurement[T], kernel: str) -> T:
    """`kernel` is a Debian suite or HOST; raises Unavailable when it cannot be had here."""
    with tempfile.TemporaryDirectory(prefix="ksm-lab-") as work:
        if kernel == HOST:
            return measure_host(measurement, Path(work))
        return measure_guest(measurement, kernel, Path(work))


def measure(kernel: str) -> Capture:
    """The kernel's capture (lab/capture.py); raises Unavailable when it cannot be had here."""
    return measure_on(CAPTURE, kernel)

"""`make lab`: measure every lab kernel, compare the exporter with the kernel's own files,
record the captures under tests/fixtures/kernels/, then attribute real QEMU guests.

Ends with one line per kernel, `<release>: <n> series checked, <m> differ`, and one per real
guest; exits 1 when anything differs or, under CI=true, when a piece cannot be had.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from lab.captures import KERNEL_CAPTURES
from lab.compare import checks, differences
from lab.kernels import Unavailable
from lab.measure import LAB_KERNELS, measure
from lab.real_guests import attribute, guest_names, problems


def main() -> int:
    started = time.monotonic()
    summary: list[str] = []
    failed = False
    for kernel in LAB_KERNELS:
        piece = time.monotonic()
        try:
            capture = measure(kernel)
        except Unavailable as why:
            summary.append(f"{kernel}: skipped: {why}")
            failed = failed or bool(os.environ.get("CI"))
            continue
        found = checks(capture, capture.exposition)
        wrong = differences(found)
        for check in wrong:
            print(f"{capture.release}: {check}", file=sys.stderr)
        directory = KERNEL_CAPTURES / capture.release
        shutil.rmtree(directory, ignore_errors=True)
        capture.write_tree(directory)
        summary.append(f"{capture.release}: {len(found)} series checked, {len(wrong)} differ")
        print(f"lab: {kernel} in {time.monotonic() - piece:.0f} s", file=sys.stderr)
        failed = failed or bool(wrong) or "same_instant" in capture.notes
    piece = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="ksm-lab-guests-") as work:
            attribution = attribute(guest_names(), Path(work))
    except Unavailable as why:
        summary.append(f"guests: skipped: {why}")
        failed = failed or bool(os.environ.get("CI"))
    else:
        for problem in problems(attribution):
            print(f"guests: {problem}", file=sys.stderr)
        summary.extend(attribution.summary())
        failed = failed or bool(problems(attribution))
        print(f"lab: real guests in {time.monotonic() - piece:.0f} s", file=sys.stderr)
    print(f"lab: {time.monotonic() - started:.0f} s", file=sys.stderr)
    print("\n".join(summary))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

"""`make lab`: measure every lab kernel, compare the exporter with the kernel's own files and
each kernel's offering with its committed capture, fork a merged process on every kernel
(lab/forks.py), then attribute real QEMU guests. `make lab-record` (`--record`) also records
the captures under tests/fixtures/kernels/ and the fork captures under tests/fixtures/forks/.

A plain run writes nothing in the work tree. Ends with one line per kernel,
`<release>: <n> series checked, <m> differ`, one per kernel's fork, one per real guest and
one per platform-style guest (libvirt, Proxmox); exits 1 when anything differs (the exporter
from the kernel, what a kernel offers or what its forked child shows from its committed
capture, a kernel file from mm/ksm.c's accounting) or,
under CI=true, when a piece cannot be had.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from lab import forks
from lab.compare import checks, differences, unknown_files
from lab.kernels import Unavailable
from lab.measure import LAB_KERNELS, measure
from lab.real_guests import (
    attribute,
    attribute_platform,
    guest_names,
    platform_guests,
    platform_problems,
    platform_summary,
    problems,
)
from lab.recording import committed, drift, record


def platform_style_guests(summary: list[str]) -> bool:
    """The libvirt-style and the Proxmox-style guest, one at a time; True when one failed."""
    failed = False
    for platform in platform_guests(os.getpid()):
        piece = time.monotonic()
        try:
            with tempfile.TemporaryDirectory(prefix="ksm-lab-platform-") as work:
                figures = attribute_platform(platform, Path(work))
        except Unavailable as why:
            summary.append(f"{platform.platform}-style guest: skipped: {why}")
            failed = failed or bool(os.environ.get("CI"))
            continue
        wrong = platform_problems(figures)
        for problem in wrong:
            print(f"guests: {problem}", file=sys.stderr)
        summary.append(platform_summary(figures, os.sysconf("SC_PAGE_SIZE")))
        failed = failed or bool(wrong)
        print(f"lab: {platform.platform}-style guest in {time.monotonic() - piece:.0f} s",
              file=sys.stderr)  # fmt: skip
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab", description=__doc__)
    parser.add_argument(
        "--record",
        action="store_true",
        help="record the captures in tests/fixtures/kernels/ and tests/fixtures/forks/",
    )
    args = parser.parse_args(argv)
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
        wrong = [str(check) for check in differences(found)]
        unknown = unknown_files(capture)
        wrong += [f"{name}: no expected series in lab/compare.py" for name in unknown]
        for problem in wrong:
            print(f"{capture.release}: {problem}", file=sys.stderr)
        drifted = drift(capture)
        if drifted:
            print(f"{capture.release}: {drifted}", file=sys.stderr)
        if committed(capture.release) is None:
            print(f"{capture.release}: no committed capture; make lab-record adds it",
                  file=sys.stderr)  # fmt: skip
        if args.record:
            print(f"{capture.release}: recorded in {record(capture)}", file=sys.stderr)
        summary.append(f"{capture.release}: {len(found)} series checked, {len(wrong)} differ")
        print(f"lab: {kernel} in {time.monotonic() - piece:.0f} s", file=sys.stderr)
        failed = failed or bool(wrong) or "same_instant" in capture.notes
        failed = failed or (bool(drifted) and not args.record)
    for kernel in LAB_KERNELS:
        line, fork_failed = fork(kernel, args.record)
        summary.append(line)
        failed = failed or fork_failed
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
    failed = platform_style_guests(summary) or failed
    print(f"lab: {time.monotonic() - started:.0f} s", file=sys.stderr)
    print("\n".join(summary))
    return 1 if failed else 0


def fork(kernel: str, record: bool) -> tuple[str, bool]:
    """One kernel's fork measurement: its summary line, and whether it failed."""
    piece = time.monotonic()
    try:
        capture = forks.measure_fork(kernel)
    except Unavailable as why:
        return f"{kernel}: fork skipped: {why}", bool(os.environ.get("CI"))
    found = forks.findings(capture)
    for problem in found.problems:
        print(f"{capture.release}: fork: {problem}", file=sys.stderr)
    drifted = forks.drift(capture)
    if drifted:
        print(f"{capture.release}: fork: {drifted}", file=sys.stderr)
    if forks.committed(capture.release) is None:
        print(f"{capture.release}: no committed fork capture; make lab-record adds it",
              file=sys.stderr)  # fmt: skip
    if record:
        print(f"{capture.release}: fork recorded in {forks.record(capture)}", file=sys.stderr)
    print(f"lab: {kernel} fork in {time.monotonic() - piece:.0f} s", file=sys.stderr)
    wrong = bool(found.problems) or (bool(drifted) and not record)
    return found.summary, wrong


if __name__ == "__main__":
    sys.exit(main())

"""Which KSM sources each lab kernel offers, from the lab's captures of real kernels.

A source is a KSM file name, a `ksm_stat` key (without its colon), ksmd's `stat` or
`schedstat`, or `meminfo`. tests/test_kernel_history.py holds the kernel's history
(ksm_exporter/sources/kernel_history.py) against what each captured kernel offers.
"""

from __future__ import annotations

from pathlib import Path

from lab.captures import KERNEL_CAPTURES, Capture

# Where a per-process figure comes from once no ksm_stat line is named: the counter every
# kernel with per-process KSM figures has.
PROCESS_BASE = "ksm_merging_pages"


def version(release: str) -> tuple[int, int]:
    major, minor = release.split(".")[:2]
    return int(major), int(minor)


def shown(release: str) -> str:
    return "{}.{}".format(*version(release))


def sources(capture: Capture) -> set[str]:
    """What this kernel offers: KSM file names, ksm_stat keys (no colon), ksmd's files."""
    found = {path.rsplit("/", 1)[1] for path in capture.files if path.startswith("sys/")}
    for pid in capture.pids():
        if capture.registered(pid):
            found |= set(capture.ksm_stat_lines(pid))
            if capture.files.get(f"proc/{pid}/{PROCESS_BASE}", "").strip():
                found.add(PROCESS_BASE)
    ksmd = capture.roles.get("ksmd")
    found |= {name for name in ("stat", "schedstat") if f"proc/{ksmd}/{name}" in capture.files}
    if "proc/meminfo" in capture.files:
        found.add("meminfo")
    return found


def lab_sources(directory: Path = KERNEL_CAPTURES) -> dict[str, set[str]]:
    """{kernel version: its sources}, oldest first."""
    captures = [Capture.read_tree(path) for path in directory.iterdir() if path.is_dir()]
    captures.sort(key=lambda capture: version(capture.release))
    return {shown(capture.release): sources(capture) for capture in captures}

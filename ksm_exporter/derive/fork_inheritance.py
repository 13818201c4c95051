"""Whether the running kernel is one on which a forked child was measured to show its
parent's KSM counters.

dup_mm() copies the parent's mm_struct whole; before "mm/ksm: fix incorrect KSM counter
handling in mm_struct during fork" (2025, stable backports from 6.6) ksm_fork()
(include/linux/ksm.h) left the copied ksm_merging_pages and ksm_rmap_items as they were, so a
child shows its parent's counts until it exits, and its own on top once ksmd scanned it: the
per-process figures then count the parent's merged pages twice. Nothing in procfs or sysfs
tells a kernel with the fix from one without it, so the kernel series is all there is to go
by, and only the series the lab measured inheritance on are named: other kernels without the
fix (5.19 to 6.0, 6.2 to 6.5, 6.6 to 6.12 point releases before the backport) are not
flagged, since none was measured. The figures themselves are served as the kernel writes them.
"""

from __future__ import annotations

# (major, minor) of each kernel series on which the lab's fork capture showed a forked
# child with its parent's ksm_merging_pages and ksm_rmap_items: the release measured
# (tests/fixtures/forks/<release>/). The 6.1 stable series never took the fix, whose stable
# backports start at 6.6.
INHERITING_SERIES: dict[tuple[int, int], str] = {(6, 1): "6.1.0-50-cloud-amd64"}


def series(release: str) -> tuple[int, int] | None:
    """(major, minor) of a release string such as `6.1.0-50-cloud-amd64`, None if it has none."""
    parts = release.split(".", 2)
    if len(parts) < 2 or not parts[0].isdigit():
        return None
    minor = parts[1].split("-", 1)[0]
    return (int(parts[0]), int(minor)) if minor.isdigit() else None


def fork_inheritance_sentence(release: str) -> str | None:
    """What `status` says on a kernel of a series the lab saw a forked child inherit on (the
    release measured named), None on any other."""
    found = series(release)
    measured = None if found is None else INHERITING_SERIES.get(found)
    if found is None or measured is None:
        return None
    major, minor = found
    return (
        f"kernel {major}.{minor} (measured on {measured}): a forked child shows its parent's "
        "ksm_merging_pages and ksm_rmap_items, so per-process figures count a forked "
        "process's merged pages twice; judge the host by ksm_memory_saved_bytes"
    )

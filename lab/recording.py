"""The committed captures (tests/fixtures/kernels/): what a new measurement is compared with,
and what `make lab-record` replaces. One capture per kernel series (major.minor), since the
docs speak of kernels by series.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from lab.captures import KERNEL_CAPTURES, Capture
from lab.versions import shown, sources


def series_tree(release: str, directory: Path) -> Path | None:
    """The committed tree below `directory` of the same kernel series (major.minor) as
    `release`, if any."""
    if not directory.is_dir():
        return None
    for path in sorted(directory.iterdir()):
        if path.is_dir() and shown(path.name) == shown(release):
            return path
    return None


def replace_series(release: str, directory: Path) -> Path:
    """Remove the committed tree of `release`'s kernel series below `directory`; where the
    new one goes."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in directory.iterdir():
        if path.is_dir() and shown(path.name) == shown(release):
            shutil.rmtree(path)
    return directory / release


def committed(release: str, directory: Path = KERNEL_CAPTURES) -> Capture | None:
    """The committed capture of the same kernel series (major.minor) as `release`."""
    path = series_tree(release, directory)
    return None if path is None else Capture.read_tree(path)


def drift(capture: Capture, directory: Path = KERNEL_CAPTURES) -> str | None:
    """How what this kernel offers (KSM files, ksm_stat lines, ksmd's files) differs from its
    committed capture, from which docs/metrics.md's kernel column is generated; None when it
    does not, or when no capture of its series is committed."""
    old = committed(capture.release, directory)
    if old is None:
        return None
    gained, lost = sources(capture) - sources(old), sources(old) - sources(capture)
    if not gained and not lost:
        return None
    return (
        f"offers {sorted(gained)} more and {sorted(lost)} fewer than the committed capture of "
        f"{old.release} (make lab-record, then make docs)"
    )


def record(capture: Capture, directory: Path = KERNEL_CAPTURES) -> Path:
    """Replace the committed capture of the same kernel series with this one."""
    target = replace_series(capture.release, directory)
    capture.normalised().write_tree(target)
    return target

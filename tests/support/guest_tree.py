"""A copy of a fixture tree with QEMU guests added as <procfs>/<pid>/ directories: the
command line, comm and cgroup a platform gives its QEMU, and a registered process's
ksm_stat, so an exporter serves them as it would the real ones."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from harness.paths import FIXTURES


@dataclass(frozen=True)
class FixtureGuest:
    pid: int
    argv: tuple[str, ...]
    cgroup: str
    merging_pages: int


def guest_tree(directory: Path, guests: list[FixtureGuest], fixture: str = "current") -> Path:
    """`fixture`'s tree copied to `directory`, with the guests; returns `directory`."""
    shutil.copytree(FIXTURES / fixture, directory, symlinks=True)
    for guest in guests:
        proc = directory / "proc" / str(guest.pid)
        proc.mkdir()
        (proc / "cmdline").write_bytes("\0".join(guest.argv).encode() + b"\0")
        # The kernel's comm: the executable's name, cut to 15 bytes (TASK_COMM_LEN - 1).
        (proc / "comm").write_text(Path(guest.argv[0]).name[:15] + "\n")
        (proc / "cgroup").write_text(f"0::{guest.cgroup}\n")
        (proc / "ksm_stat").write_text(
            f"ksm_rmap_items {guest.merging_pages * 2}\nksm_zero_pages 0\n"
            f"ksm_merging_pages {guest.merging_pages}\nksm_process_profit 0\n"
            "ksm_merge_any: no\nksm_mergeable: yes\n"
        )
    return directory


def kubevirt_cgroup(pod: str) -> str:
    """The compute container's cgroup v2 path in a burstable virt-launcher pod (systemd
    cgroup driver, containerd)."""
    return (
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
        f"{pod}.slice/cri-containerd-{pod}4d2a.scope"
    )

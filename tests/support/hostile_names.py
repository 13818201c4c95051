"""Processes whose names are markup: any local user can name a process or a guest this way."""

from __future__ import annotations

from pathlib import Path

from ksm_exporter.sources.roots import Roots

SVG_COMM = "<svg/onload=alert(1)>"
IMG_GUEST = '"><img src=x onerror=alert(1)>'
SCRIPT_CGROUP = "/system.slice/<script>alert(1)</script>.scope"
SVG_PID = 3100
QEMU_PID = 3200


def write_process(
    roots: Roots, pid: int, *, comm: str, cmdline: list[str], cgroup: str, merging: int
) -> None:
    """A registered process as the kernel shows it: comm, NUL-separated cmdline, cgroup v2."""
    directory = Path(roots.procfs) / str(pid)
    directory.mkdir()
    (directory / "comm").write_text(comm + "\n")
    (directory / "cmdline").write_bytes(b"".join(arg.encode() + b"\0" for arg in cmdline))
    (directory / "cgroup").write_text(f"0::{cgroup}\n")
    (directory / "ksm_stat").write_text(
        f"ksm_rmap_items {2 * merging}\nksm_zero_pages 0\nksm_merging_pages {merging}\n"
        f"ksm_process_profit {merging * 4096 - 2 * merging * 64}\nksm_merge_any: no\n"
        "ksm_mergeable: yes\n"
    )


def add_hostile_processes(roots: Roots) -> None:
    """Two processes with markup for names, both among the top processes by merging pages."""
    write_process(
        roots,
        SVG_PID,
        comm=SVG_COMM,
        cmdline=["/usr/bin/worker"],
        cgroup=SCRIPT_CGROUP,
        merging=90_000,
    )
    write_process(
        roots,
        QEMU_PID,
        comm="qemu-system-x86",
        cmdline=["/usr/bin/qemu-system-x86_64", "-name", f"guest={IMG_GUEST}", "-m", "1024"],
        cgroup="/machine.slice/hostile.scope",
        merging=80_000,
    )

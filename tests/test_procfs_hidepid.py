"""hidepid= on the procfs root: found in mountinfo (proc_show_options() in fs/proc/root.c
writes it among the super options) and said once in the log."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ksm_exporter.sources.procfs_mount import hidepid_of

MOUNTINFO = """\
22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
23 1 0:22 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
41 23 0:35 / /proc/sys/fs/binfmt_misc rw,relatime shared:24 - binfmt_misc binfmt_misc rw
90 1 0:50 / /srv/proc rw,relatime - proc proc rw,gid=4242,hidepid=invisible
"""


@pytest.mark.unit
def test_the_mount_at_the_root_names_its_hidepid() -> None:
    assert hidepid_of(MOUNTINFO, "/srv/proc") == "invisible"


@pytest.mark.unit
def test_a_proc_mount_without_it_hides_nothing() -> None:
    assert hidepid_of(MOUNTINFO, "/proc") is None


@pytest.mark.unit
def test_the_last_mount_at_a_point_is_the_one_seen() -> None:
    again = MOUNTINFO + "91 1 0:51 / /proc rw,relatime - proc proc rw,hidepid=2\n"
    assert hidepid_of(again, "/proc") == "2"


@pytest.mark.e2e
def test_a_real_procfs_mounted_with_hidepid_is_named(tmp_path: Path) -> None:
    """A procfs mounted with hidepid=invisible in a private mount namespace (needs root)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare(1) to mount a procfs of its own")
    root = tmp_path / "proc"
    root.mkdir()
    script = (
        f"mount -t proc -o hidepid=invisible proc {root} && "
        f"{sys.executable} -c 'from ksm_exporter.sources.procfs_mount import read_hidepid; "
        f'print(read_hidepid("{root}"), read_hidepid("/proc"))\''
    )
    result = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["invisible", "None"]

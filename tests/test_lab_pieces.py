"""The kernel lab's own pieces: the initramfs format, and saying why a piece is missing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from harness.tools import require
from lab.initramfs import Cpio
from lab.kernels import Unavailable
from lab.qemu import qemu


@pytest.mark.unit
def test_missing_qemu_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(Unavailable, match="apt-get install qemu-system-x86"):
        qemu()


@pytest.mark.e2e
def test_the_archive_is_one_cpio_understands(tmp_path: Path) -> None:
    archive = Cpio()
    archive.file("/lab/src/a.py", b"print(1)\n")
    archive.symlink("/bin/sh", "busybox")
    archive.file("/init", b"#!/bin/sh\n", 0o755)
    archive.write(tmp_path / "image.cpio")
    image = (tmp_path / "image.cpio").read_bytes()
    cpio = require("cpio", "cpio")
    names = subprocess.run([cpio, "-it"], input=image, capture_output=True, check=True).stdout
    assert names.decode().split() == ["lab", "lab/src", "lab/src/a.py", "bin", "bin/sh", "init"]
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run([cpio, "-id"], input=image, cwd=out, capture_output=True, check=True)
    assert (out / "lab/src/a.py").read_bytes() == b"print(1)\n"
    assert os.readlink(out / "bin/sh") == "busybox"
    assert os.access(out / "init", os.X_OK)

"""Initramfs images that carry this Python, the project and its runtime dependencies, so a
lab guest boots a bare kernel with no disk, no network and no kernel modules.

Two archives, concatenated (the kernel unpacks one after the other): the interpreter with its
standard library, shared libraries and the exporter's dependencies, cached since it only
changes with the Python installation; and the project, rebuilt for every run.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from packaging.requirements import Requirement

from lab.captures import REPO
from lab.kernels import Unavailable

SITE = "/lab/site"  # the exporter's dependencies
SOURCE = "/lab/src"  # this project
# Standard library parts the exporter never imports; leaving them out halves the image.
STDLIB_UNUSED = re.compile(
    r"^(site-packages|dist-packages|test|tests|idlelib|tkinter|turtledemo|ensurepip|lib2to3"
    r"|pydoc_data|config-.*|__phello__|distutils|_test.*|_ctypes_test.*|_xxtestfuzz.*)$"
)
# Loaded only on request (a faster event loop, a web config file): the guest runs without them.
OPTIONAL_DISTRIBUTIONS = frozenset({"uvloop", "bcrypt", "pyyaml"})
PROJECT_PARTS = (
    "ksm_exporter",
    "lab/__init__.py",
    "lab/guest.py",
    "lab/capture.py",
    "lab/fork_capture.py",
    "harness/__init__.py",
    "harness/eventually.py",
    "harness/merging_workload.py",
)
BUSYBOX = "/bin/busybox"


class Cpio:
    """A `newc` archive (the initramfs format) built in memory."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.paths: set[str] = set()

    def _entry(self, path: str, mode: int, data: bytes = b"") -> None:
        name = path.lstrip("/").encode() + b"\0"
        fields = (len(self.paths) + 1, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name), 0)
        header = b"070701" + b"".join(b"%08x" % value for value in fields)
        self.chunks += [header, name, _pad(len(header) + len(name)), data, _pad(len(data))]
        self.paths.add(path)

    def directory(self, path: str) -> None:
        if path in ("", "/"):
            return  # the archive's root exists already
        parent = os.path.dirname(path)
        if parent not in ("", "/") and parent not in self.paths:
            self.directory(parent)
        if path not in self.paths:
            self._entry(path, 0o040755)

    def file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self.directory(os.path.dirname(path))
        if path not in self.paths:
            self._entry(path, 0o100000 | mode, data)

    def copy(self, source: Path, path: str) -> None:
        self.file(path, source.read_bytes(), source.stat().st_mode & 0o777)

    def tree(self, source: Path, path: str, skip: re.Pattern[str] | None = None) -> None:
        for directory, subdirectories, files in os.walk(source):
            subdirectories[:] = sorted(d for d in subdirectories if not (skip and skip.match(d)))
            relative = os.path.relpath(directory, source)
            for name in sorted(files):
                if (skip and skip.match(name)) or not os.path.exists(os.path.join(directory, name)):
                    continue  # unused, or a dangling link
                target = os.path.normpath(os.path.join(path, relative, name))
                self.copy(Path(directory, name), target)

    def symlink(self, path: str, target: str) -> None:
        self.directory(os.path.dirname(path))
        self._entry(path, 0o120777, target.encode())

    def write(self, destination: Path) -> None:
        self._entry("TRAILER!!!", 0)
        destination.write_bytes(b"".join(self.chunks))


def _pad(length: int) -> bytes:
    return b"\0" * (-length % 4)


def interpreter() -> str:
    """The real file behind the Python running the lab (a venv's python is a link to it)."""
    return os.path.realpath(sys.executable)


def runtime_distributions(name: str = "ksm-exporter") -> list[importlib.metadata.Distribution]:
    """The installed distributions the exporter needs at run time (no extras, no dev tools)."""
    found: dict[str, importlib.metadata.Distribution] = {}
    pending = [name]
    while pending:
        dist = importlib.metadata.distribution(pending.pop())
        key = dist.metadata["Name"].lower().replace("_", "-")
        if key in found:
            continue
        found[key] = dist
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.name.lower() in OPTIONAL_DISTRIBUTIONS:
                continue
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    del found[name]  # the project itself comes from the work tree
    return list(found.values())


def shared_libraries(binaries: Iterable[str]) -> set[str]:
    """Every library the dynamic loader maps for these binaries, and the loader itself."""
    libraries: set[str] = set()
    for binary in binaries:
        result = subprocess.run(["ldd", binary], capture_output=True, text=True, check=False)
        for line in result.stdout.splitlines():
            match = re.search(r"(/\S+) \(0x", line)
            if match:
                libraries.add(match.group(1))
    return libraries


def python_image(cache: Path) -> Path:
    """The cached archive of the interpreter, its libraries and the exporter's dependencies."""
    dists = runtime_distributions()
    stdlib = Path(os.__file__).parent
    key = "\n".join(
        [
            Path(__file__).read_text(),  # how the image is made
            interpreter(),
            sys.version,
            *sorted(f"{d.metadata['Name']} {d.version}" for d in dists),
        ]
    )
    image = cache / f"python-{hashlib.sha256(key.encode()).hexdigest()[:16]}.cpio"
    if image.exists():
        return image
    archive = Cpio()
    archive.copy(Path(interpreter()), interpreter())
    archive.tree(stdlib, str(stdlib), STDLIB_UNUSED)
    binaries = [interpreter(), *(str(p) for p in stdlib.glob("lib-dynload/*.so"))]
    for dist in dists:
        for entry in dist.files or []:
            if entry.parts[0] == "..":  # scripts installed outside site-packages
                continue
            source = Path(str(dist.locate_file(entry)))
            if source.is_file():
                archive.copy(source, os.path.join(SITE, str(entry)))
                if source.suffix == ".so":
                    binaries.append(str(source))
    for library in sorted(shared_libraries(binaries)):
        archive.copy(Path(os.path.realpath(library)), library)
    cache.mkdir(parents=True, exist_ok=True)
    partial = image.with_suffix(".partial")
    archive.write(partial)
    partial.rename(image)
    for stale in cache.glob("python-*.cpio"):
        if stale != image:
            stale.unlink()  # made for another Python or by an older builder
    return image


INIT = """#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /tmp /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
ip link set lo up
cd {source}
PYTHONPATH={site}:{source} PYTHONDONTWRITEBYTECODE=1 {python} {command}
echo "lab-guest-exit $?"
poweroff -f
"""


def static_busybox() -> Path:
    """busybox-static's binary: a dynamically linked busybox would not start in the guest."""
    busybox = Path(BUSYBOX)
    if not busybox.is_file():
        raise Unavailable(f"{BUSYBOX} is missing: apt-get install busybox-static")
    ldd = subprocess.run(["ldd", BUSYBOX], capture_output=True, text=True, check=False)
    if "=>" in ldd.stdout:
        raise Unavailable(f"{BUSYBOX} is not statically linked: apt-get install busybox-static")
    return busybox


def project_image(destination: Path, command: str) -> None:
    """The project, busybox and an /init that runs `command` with the packed Python."""
    archive = Cpio()
    archive.copy(static_busybox(), "/bin/busybox")
    archive.symlink("/bin/sh", "busybox")
    init = INIT.format(source=SOURCE, site=SITE, python=interpreter(), command=command)
    archive.file("/init", init.encode(), 0o755)
    for part in PROJECT_PARTS:
        source = REPO / part
        if source.is_dir():
            archive.tree(source, f"{SOURCE}/{part}", re.compile(r"^__pycache__$"))
        else:
            archive.copy(source, f"{SOURCE}/{part}")
    archive.write(destination)


def initramfs(cache: Path, work: Path, command: str) -> Path:
    """The Python archive followed by the project's, as one file for `qemu -initrd`."""
    project = work / "project.cpio"
    project_image(project, command)
    combined = work / "initramfs.cpio"
    with combined.open("wb") as out:
        for part in (python_image(cache), project):
            with part.open("rb") as f:
                shutil.copyfileobj(f, out)
    return combined

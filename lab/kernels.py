"""Lab kernels: Debian's cloud kernels fetched with apt into a private cache.

apt runs with its own sources list, package lists and archive directory under the cache, so
the host's apt configuration is neither read nor changed; once a kernel is cached, no network
is needed again.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

CACHE = Path(os.environ.get("KSM_EXPORTER_LAB_CACHE", Path.home() / ".cache" / "ksm-exporter-lab"))
MIRROR = "http://deb.debian.org/debian"
SUITES = ("bookworm", "bookworm-backports")  # oldest kernel first
META_PACKAGE = "linux-image-cloud-amd64"


class Unavailable(Exception):
    """A lab piece that cannot be had here; the message says why."""


@dataclass(frozen=True)
class LabKernel:
    """A kernel image to boot: the newest cloud kernel of one Debian suite."""

    suite: str
    vmlinuz: Path

    @property
    def release(self) -> str:
        return self.vmlinuz.name.removeprefix("vmlinuz-")


def apt_options(cache: Path) -> list[str]:
    apt = cache / "apt"
    return [
        f"-oDir::Etc::SourceList={apt / 'sources.list'}",
        "-oDir::Etc::SourceParts=/nonexistent",
        f"-oDir::State::Lists={apt / 'lists'}",
        f"-oDir::Cache={apt}",
        "-oDir::State::Status=/var/lib/dpkg/status",
        "-oAcquire::Languages=none",
        "-oAPT::Sandbox::User=root",
        "-oDebug::NoLocking=1",
    ]


def apt(cache: Path, *args: str, cwd: Path | None = None) -> str:
    try:
        result = subprocess.run(
            [args[0], *apt_options(cache), *args[1:]],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise Unavailable(f"{args[0]} failed: {err}") from err
    if result.returncode != 0:
        raise Unavailable(f"{' '.join(args)} failed: {result.stderr.strip()[-500:]}")
    return result.stdout


def update_lists(cache: Path) -> None:
    apt_dir = cache / "apt"
    (apt_dir / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (apt_dir / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    sources = "".join(f"deb {MIRROR} {suite} main\n" for suite in SUITES)
    (apt_dir / "sources.list").write_text(sources)
    apt(cache, "apt-get", "update", "-qq")


def fetch(suite: str, cache: Path = CACHE) -> LabKernel:
    """The suite's cloud kernel, from the cache or downloaded; Unavailable when it cannot be."""
    directory = cache / "kernels" / suite
    cached = sorted(directory.glob("vmlinuz-*"))
    if cached:
        return LabKernel(suite, cached[-1])
    update_lists(cache)
    depends = apt(cache, "apt-cache", "depends", f"{META_PACKAGE}/{suite}")
    match = re.search(r"Depends: (linux-image-\S+)", depends)
    if match is None:
        raise Unavailable(f"{META_PACKAGE}/{suite} names no kernel package: {depends!r}")
    with tempfile.TemporaryDirectory(dir=cache) as download:
        apt(cache, "apt-get", "download", "-qq", f"{match.group(1)}/{suite}", cwd=Path(download))
        (deb,) = Path(download).glob("*.deb")
        extracted = Path(download) / "root"
        # Only boot/ (vmlinuz and config): the modules are not needed.
        tar = f"dpkg-deb --fsys-tarfile {deb} | tar -x -C {extracted} ./boot"
        extracted.mkdir()
        subprocess.run(["sh", "-ec", tar], check=True, timeout=120)
        directory.mkdir(parents=True, exist_ok=True)
        for file in (extracted / "boot").iterdir():
            if file.name.startswith(("vmlinuz-", "config-")):
                file.rename(directory / file.name)
    return fetch(suite, cache)


def config(kernel: LabKernel) -> str:
    return (kernel.vmlinuz.parent / f"config-{kernel.release}").read_text()

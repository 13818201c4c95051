"""Running the real exporter as `nobody`, with or without CAP_DAC_READ_SEARCH.

`nobody` must be able to read the interpreter, the standard library, the exporter and its
runtime dependencies. A checkout or a virtual environment may sit where it cannot (under
/root, or behind a 0700 directory), so the exporter and exactly its runtime distributions are
copied into a world-readable directory, and the system's own interpreter of the same
version runs them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from harness.paths import REPO
from harness.tools import require
from ksm_exporter.privileges import grant_to_file

NOBODY = ("--reuid=nobody", "--regid=nogroup", "--clear-groups")
# What systemd's DynamicUser= with AmbientCapabilities=CAP_DAC_READ_SEARCH hands over.
AMBIENT_DAC_READ_SEARCH = ("--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search")
SYSTEM_PYTHON = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"


@dataclass(frozen=True)
class NobodyRuntime:
    root: Path
    python: str
    env: dict[str, str]

    def command(self, *setpriv_options: str, python: str | None = None) -> tuple[str, ...]:
        setpriv = require("setpriv", "util-linux")
        return (setpriv, *NOBODY, *setpriv_options, python or self.python)

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """`python argv...` as nobody, from /, its output captured."""
        return subprocess.run(
            [*self.command(), *argv],
            env={**os.environ, **self.env},
            cwd="/",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def python_with_file_capability(self) -> str:
        """A copy of the interpreter marked as the container image marks its own."""
        copy = self.root / "bin" / Path(self.python).name
        if not copy.exists():
            copy.parent.mkdir(mode=0o755)
            shutil.copy(self.python, copy)
            grant_to_file(str(copy))
        return str(copy)


def runtime_distributions(name: str = "ksm-exporter") -> set[str]:
    """The exporter's runtime requirements, followed transitively, extras left out."""
    seen: set[str] = set()
    todo = [name]
    while todo:
        dist = metadata.distribution(todo.pop())
        key = dist.metadata["Name"].lower()
        if key in seen:
            continue
        seen.add(key)
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
    return seen - {name}


def copy_runtime(site: Path) -> None:
    shutil.copytree(REPO / "ksm_exporter", site / "ksm_exporter")
    for name in sorted(runtime_distributions()):
        for file in metadata.distribution(name).files or []:
            source = Path(str(file.locate()))
            if source.is_file() and "__pycache__" not in file.parts:
                target = site / file
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)


def readable_by_all(root: Path) -> None:
    for directory, _dirs, files in os.walk(root):
        os.chmod(directory, 0o755)
        for file in files:
            os.chmod(os.path.join(directory, file), 0o644)


@contextlib.contextmanager
def directory_for_nobody(prefix: str) -> Iterator[Path]:
    """A temporary directory `nobody` can reach (pytest's tmp_path is root's alone); the test
    makes what it puts there readable with readable_by_all. Removed afterwards, whatever
    modes the test left on it."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield root
    finally:
        for directory, _dirs, _files in os.walk(root):
            os.chmod(directory, 0o755)
        shutil.rmtree(root)


def nobody_runtime() -> Iterator[NobodyRuntime]:
    """For a session fixture: the copied runtime, checked to import as nobody."""
    require(SYSTEM_PYTHON, "python3")
    if os.getuid() != 0:
        pytest.skip("running as another user needs root")
    root = Path(tempfile.mkdtemp(prefix="ksm-exporter-nobody-"))
    try:
        copy_runtime(root / "site")
        readable_by_all(root)
        runtime = NobodyRuntime(
            root, SYSTEM_PYTHON, {"PYTHONPATH": str(root / "site"), "PYTHONNOUSERSITE": "1"}
        )
        probe = runtime.run("-c", "import ksm_exporter.cli")
        assert probe.returncode == 0, f"nobody cannot run the exporter: {probe.stderr}"
        yield runtime
    finally:
        shutil.rmtree(root)

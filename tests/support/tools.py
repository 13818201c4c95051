"""External programs the tests drive (promtool, prometheus, ...).

Where one is missing a developer's run skips, naming the Debian package; CI (CI=true)
installs them all, so there a missing one fails instead of passing by running nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def require(command: str, package: str) -> str:
    path = shutil.which(command)
    if path is not None:
        return path
    message = f"{command} is missing: apt-get install {package}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def promtool(
    *args: str, cwd: str | os.PathLike[str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs Debian's promtool with `args`; missing, it skips or fails as `require` does."""
    return subprocess.run(
        [require("promtool", "prometheus"), *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

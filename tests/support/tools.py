"""External programs the tests drive (promtool, prometheus, ...).

Where one is missing a developer's run skips, naming the Debian package; CI (CI=true)
installs them all, so there a missing one fails instead of passing by running nothing.
"""

from __future__ import annotations

import os
import shutil

import pytest


def require(command: str, package: str) -> str:
    path = shutil.which(command)
    if path is not None:
        return path
    message = f"{command} is missing: apt-get install {package}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)

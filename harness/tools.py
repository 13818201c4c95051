"""External programs the tests drive (promtool, prometheus, ...).

Where one is missing a developer's run skips, naming the Debian package; CI (CI=true)
installs them all, so there a missing one fails instead of passing by running nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import Counter

import pytest

# How every skip for a missing program reads (the lab's too), so the end of a run can count
# them by program: "<program> is missing: apt-get install <package>".
MISSING = re.compile(r"(?P<program>\S+) is missing: apt-get install (?P<package>[^\s,]+)")


def missing_program(reason: str) -> tuple[str, str] | None:
    """(program, package) of a skip reason that names a missing program, else None."""
    match = MISSING.search(reason)
    if match is None:
        return None
    return os.path.basename(match["program"]), match["package"]


def skip_summary(reasons: list[str]) -> str:
    """One line: how many tests skipped, how many of them for which missing program, and
    the apt-get line that installs those programs."""
    if not reasons:
        return "skipped: no test"
    missing = [found for reason in reasons if (found := missing_program(reason))]
    tests = f"{len(reasons)} test{'s' if len(reasons) > 1 else ''}"
    if not missing:
        return f"skipped: {tests}, none for a missing program"
    by_program = Counter(program for program, _package in missing)
    packages = sorted({package for _program, package in missing})
    parts = [f"{count} for {program}" for program, count in by_program.most_common()]
    if len(missing) < len(reasons):
        parts.append(f"{len(reasons) - len(missing)} for other reasons")
    return f"skipped: {tests}: {', '.join(parts)} (apt-get install {' '.join(packages)})"


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

"""The lab's kernels in tests: a measurement that cannot be had here skips (fails under CI),
and a fork capture is judged by mm/ksm.c's accounting before anything else is read of it."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

import pytest

from lab import forks
from lab.kernels import Unavailable

T = TypeVar("T")


def measured(measure: Callable[[str], T], kernel: str) -> T:
    """What `measure` takes of the lab kernel; skipped where the kernel cannot be had here,
    failed instead under CI=true, where every kernel must be."""
    try:
        return measure(kernel)
    except Unavailable as why:
        if os.environ.get("CI"):
            pytest.fail(f"{kernel}: {why}")
        pytest.skip(f"{kernel}: {why}")


def sound_findings(fork: forks.ForkCapture) -> forks.Findings:
    """The fork's findings, asserted free of problems and with a verdict on inheritance."""
    found = forks.findings(fork)
    assert found.problems == []
    assert found.inherited is not None
    return found

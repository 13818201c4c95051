"""Waiting for a condition: the one way tests wait, instead of fixed sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(
    check: Callable[[], T | None],
    timeout: float,
    interval: float = 0.05,
    what: str = "the condition",
) -> T:
    """The first truthy result of `check`, polled every `interval` seconds.

    Raises AssertionError naming `what` (and the last result) when `timeout` passes first.
    An AssertionError raised by `check` counts as "not yet" until the time is up, then it
    propagates, so a check may be written with plain asserts.
    """
    deadline = time.monotonic() + timeout
    while True:
        last_error: AssertionError | None = None
        try:
            result = check()
        except AssertionError as err:
            result, last_error = None, err
        if result:
            return result
        if time.monotonic() >= deadline:
            if last_error is not None:
                raise last_error
            raise AssertionError(f"{what} did not happen within {timeout:g} s (last: {result!r})")
        time.sleep(interval)

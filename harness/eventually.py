"""Waiting for a condition: the one way tests wait, instead of fixed sleeps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

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
        result, error = _attempt(check)
        if result:
            return result
        if time.monotonic() >= deadline:
            _give_up(timeout, what, result, error)
        time.sleep(interval)


async def eventually_async(
    check: Callable[[], Awaitable[T | None]],
    timeout: float,
    interval: float = 0.05,
    what: str = "the condition",
) -> T:
    """`eventually` for a coroutine check, sleeping on the event loop between attempts."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result, error = await check(), None
        except AssertionError as err:
            result, error = None, err
        if result:
            return result
        if time.monotonic() >= deadline:
            _give_up(timeout, what, result, error)
        await asyncio.sleep(interval)


def _attempt(check: Callable[[], T | None]) -> tuple[T | None, AssertionError | None]:
    try:
        return check(), None
    except AssertionError as err:
        return None, err


def _give_up(timeout: float, what: str, result: object, error: AssertionError | None) -> NoReturn:
    if error is not None:
        raise error
    raise AssertionError(f"{what} did not happen within {timeout:g} s (last: {result!r})")

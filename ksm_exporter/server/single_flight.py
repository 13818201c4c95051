"""Concurrent callers of an async job share the run that is already in flight."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    """Fifty scrapes arriving together cause one collection, not fifty.

    A caller that goes away (client disconnect) does not cancel the run the others await.
    """

    def __init__(self, job: Callable[[], Awaitable[T]]) -> None:
        self._job = job
        self._running: asyncio.Future[T] | None = None

    async def __call__(self) -> T:
        if self._running is None:
            running = asyncio.ensure_future(self._job())
            running.add_done_callback(self._finished)
            self._running = running
        return await asyncio.shield(self._running)

    def _finished(self, done: asyncio.Future[T]) -> None:
        self._running = None
        if not done.cancelled():
            done.exception()  # mark retrieved; waiters re-raise it themselves

"""The one read that leaves the event loop: the per-process sweep, with a deadline.

A read of `/proc/<pid>/ksm_stat` waits for the process's memory-map lock, which a process
stuck in the kernel can hold indefinitely. Past the deadline the scrape goes out without the
result, and no second read starts until the stuck one returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class OffLoop(Generic[T]):
    def __init__(self, read: Callable[[], T], deadline: float) -> None:
        self.read = read
        self.deadline = deadline
        self._running: asyncio.Future[T] | None = None

    @property
    def busy(self) -> bool:
        return self._running is not None and not self._running.done()

    def start(self) -> asyncio.Future[T] | None:
        """A read in a worker thread, or None while an earlier one is still stuck."""
        if self.busy:
            return None
        self._running = asyncio.get_running_loop().run_in_executor(None, self.read)
        return self._running

    async def finish(self, running: asyncio.Future[T] | None) -> T | None:
        """The read's result, or None when it is not done by the deadline."""
        if running is None:
            return None
        try:
            return await asyncio.wait_for(asyncio.shield(running), self.deadline)
        except TimeoutError:
            return None

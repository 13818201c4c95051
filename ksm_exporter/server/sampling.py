"""The scan-cost sampler's loop and the status page's history of it: one of each per sampler,
however many applications serve the same reader.

An application that started its own loop and its own history would tick the sampler twice as
often and observe each tick twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator

from aiohttp import web

from ksm_exporter.reading.cost_sampler import CostSampler
from ksm_exporter.reading.host_reader import HostReader
from ksm_exporter.status.history import History


class Sampling:
    """The sampler's history, and its loop while at least one application serves."""

    def __init__(self, sampler: CostSampler, page_size: int) -> None:
        self._sampler = weakref.ref(sampler)  # the registry below is keyed by the sampler
        self.history = History(page_size)
        sampler.observers.append(self.history.observe)
        self.serving = 0
        self._task: asyncio.Task[None] | None = None

    async def serve(self, _app: web.Application) -> AsyncIterator[None]:
        """An application's cleanup context: the loop runs from the first start to the
        last cleanup."""
        sampler = self._sampler()
        assert sampler is not None  # the application's reader holds it
        self.serving += 1
        if self._task is None:
            self._task = asyncio.create_task(sampler.run(), name="ksm-cost-sampler")
        try:
            yield
        finally:
            self.serving -= 1
            if not self.serving and self._task is not None:
                task, self._task = self._task, None
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


_SAMPLINGS: weakref.WeakKeyDictionary[CostSampler, Sampling] = weakref.WeakKeyDictionary()


def sampling_of(reader: HostReader) -> Sampling:
    """The one `Sampling` of `reader`'s sampler."""
    sampler = reader.sampler
    found = _SAMPLINGS.get(sampler)
    if found is None:
        found = _SAMPLINGS[sampler] = Sampling(sampler, reader.page_size)
    return found

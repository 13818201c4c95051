"""A reading of something that changes slowly, kept for a while: read at most once per
`seconds` however many callers ask, from any thread.

The status view shows, beside the collection, what the other tuners would count (the QEMU
processes, the tuners running): each a walk of every process in /proc, as dear as the
per-process sweep itself. Processes start and stop far more slowly than viewers reload, so
the server reads them at most once a sampling interval and every view in between shares that
reading.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Kept(Generic[T]):
    """`read()`'s latest result while younger than `seconds` on `clock`; the next caller
    after that reads again, and callers meanwhile wait for that read rather than start
    their own."""

    def __init__(self, read: Callable[[], T], seconds: float, clock: Callable[[], float]) -> None:
        self._read = read
        self.seconds = seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._kept: tuple[float, T] | None = None  # (read at, result)

    def __call__(self) -> T:
        with self._lock:
            kept = self._kept
            if kept is not None and self._clock() - kept[0] < self.seconds:
                return kept[1]
            result = self._read()
            self._kept = (self._clock(), result)
            return result

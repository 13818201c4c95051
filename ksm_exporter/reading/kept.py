"""A reading of something that changes slowly, kept for a while: read at most once per
`seconds` however many callers ask, from any thread.

The status view shows, beside the collection, what the other tuners would count (the QEMU
processes, the tuners running): each a walk of every process in /proc, as dear as the
per-process sweep itself. Processes start and stop far more slowly than viewers reload, so
the server reads them at most once a sampling interval and every view in between shares that
reading. Past that, up to `stale_seconds`, a caller is answered at once with the reading kept
and a read starts in the background for the next one, so a viewer whose page reloads itself
never waits for the walk (stale-while-revalidate); older than that, the caller reads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Kept(Generic[T]):
    """`read()`'s latest result while younger than `seconds` on `clock`; the next caller
    after that reads again, and callers meanwhile wait for that read rather than start
    their own. With `stale_seconds` above `seconds`, a result younger than it is returned
    at once and read again in a background thread."""

    def __init__(
        self,
        read: Callable[[], T],
        seconds: float,
        clock: Callable[[], float],
        stale_seconds: float = 0.0,
    ) -> None:
        self._read = read
        self.seconds = seconds
        self.stale_seconds = stale_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._kept: tuple[float, T] | None = None  # (read at, result)
        self._refreshing: threading.Thread | None = None

    def __call__(self) -> T:
        with self._lock:
            kept = self._kept
            if kept is not None:
                age = self._clock() - kept[0]
                if age < self.seconds:
                    return kept[1]
                if age < self.stale_seconds:
                    self._refresh_in_background()
                    return kept[1]
            result = self._read()
            self._kept = (self._clock(), result)
            return result

    def _refresh_in_background(self) -> None:
        """Called with the lock held: one background read at a time."""
        if self._refreshing is not None and self._refreshing.is_alive():
            return
        self._refreshing = threading.Thread(target=self._refresh, name="ksm-kept", daemon=True)
        self._refreshing.start()

    def _refresh(self) -> None:
        result = self._read()
        with self._lock:
            self._kept = (self._clock(), result)

    def join(self, timeout: float | None = None) -> None:
        """Waits for a background read under way: for tests and an orderly close."""
        refreshing = self._refreshing
        if refreshing is not None:
            refreshing.join(timeout)

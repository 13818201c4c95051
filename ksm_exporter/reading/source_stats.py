"""What each source's last read took, and the problems its reads met so far."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ksm_exporter.sources.kernel_file import Problem

log = logging.getLogger(__name__)


class SourceStats:
    """Duration of each source's last read and the problems it has met so far.

    A problem is logged once when it appears and once when it clears, not on every read,
    so a broken file on a host scraped every 15 s does not flood the journal.
    """

    def __init__(self, sources: Iterable[str]) -> None:
        self.durations: dict[str, float] = {}
        self.errors: dict[str, int] = dict.fromkeys(sources, 0)
        self._current: dict[str, set[tuple[str, str]]] = {}

    def record(self, source: str, seconds: float, problems: Iterable[Problem]) -> None:
        self.durations[source] = seconds
        seen: set[tuple[str, str]] = set()
        for problem in problems:
            self.errors[source] = self.errors.get(source, 0) + 1
            key = (problem.path, problem.reason)
            if key not in seen and key not in self._current.get(source, set()):
                log.warning(
                    "cannot use kernel file",
                    extra={
                        "source": source,
                        "file": problem.path,
                        "value": problem.value,
                        "reason": problem.reason,
                    },
                )
            seen.add(key)
        for path, _reason in self._current.get(source, set()) - seen:
            log.info("kernel file readable again", extra={"source": source, "file": path})
        self._current[source] = seen

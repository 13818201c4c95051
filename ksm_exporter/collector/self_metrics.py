"""The exporter's observation of itself: build, per-source duration and errors."""

from __future__ import annotations

import logging
import platform
from collections.abc import Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ksm_exporter import __version__
from ksm_exporter.sources.kernel_file import Problem

log = logging.getLogger(__name__)


class SourceStats:
    """Duration of each source's last read and the problems it has met so far.

    A problem is logged once when it appears and once when it clears, not on every scrape,
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

    def families(self) -> Iterator[Metric]:
        build = GaugeMetricFamily(
            "ksm_exporter_build_info",
            "Version of the exporter and of the Python running it; always 1.",
            labels=["version", "python_version"],
        )
        build.add_metric([__version__, platform.python_version()], 1)
        yield build
        duration = GaugeMetricFamily(
            "ksm_exporter_collect_duration_seconds",
            "Time the last read of each source took.",
            labels=["source"],
        )
        for source, seconds in sorted(self.durations.items()):
            duration.add_metric([source], seconds)
        yield duration
        errors = CounterMetricFamily(
            "ksm_exporter_collect_errors_total",
            "Kernel files each source could not read or parse.",
            labels=["source"],
        )
        for source, count in sorted(self.errors.items()):
            errors.add_metric([source], count)
        yield errors

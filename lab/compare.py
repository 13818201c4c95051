"""Agreement between a capture of a kernel's KSM files and the exporter's exposition.

Expected values come from the captured files as the kernel wrote them, mapped to metric names
through the exporter's own declarations (KSM_FILES, PROCESS_METRICS, the ksm_stat keys),
so a metric added there is checked without touching this module. A metric whose file the
kernel lacks must be absent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ksm_exporter.derive.process_selection import process_value
from ksm_exporter.sources.ksm_files import KSM_FILES
from ksm_exporter.sources.ksm_stat import PROCESS_FIELDS
from lab.captures import Capture
from tests.support.exposition import Samples, parse_samples


@dataclass(frozen=True)
class Check:
    series: str
    expected: float | None  # None: the series must be absent
    actual: float | None

    @property
    def differs(self) -> bool:
        if self.expected is None or self.actual is None:
            return self.expected is not self.actual
        return not math.isclose(self.expected, self.actual, rel_tol=1e-12)

    def __str__(self) -> str:
        return f"{self.series}: kernel {self.expected}, exporter {self.actual}"


def _number(value: int | bool | None) -> float | None:
    return None if value is None else float(value)


def _find(samples: Samples, name: str, **labels: str) -> float | None:
    for (sample, sample_labels), value in samples.items():
        if sample == name and set(labels.items()) <= set(sample_labels):
            return value
    return None


def checks(capture: Capture, exposition: str) -> list[Check]:
    """One check per series the kernel's files determine, present or absent."""
    samples = parse_samples(exposition)
    found: list[Check] = [Check("ksm_available", 1.0, _find(samples, "ksm_available"))]
    for spec in KSM_FILES:
        raw = capture.ksm_file(spec.name)
        expected = None if raw is None else int(raw) / spec.divisor
        found.append(Check(spec.metric, expected, _find(samples, spec.metric)))
    advisor = capture.ksm_file("advisor_mode")
    for word in (advisor or "").split():
        mode = word.strip("[]")
        found.append(
            Check(
                f'ksm_advisor_mode{{mode="{mode}"}}',
                1.0 if word.startswith("[") else 0.0,
                _find(samples, "ksm_advisor_mode", mode=mode),
            )
        )
    sharing = capture.ksm_file("pages_sharing")
    if sharing is not None:
        saved = (int(sharing) + int(capture.ksm_file("ksm_zero_pages") or 0)) * capture.page_size
        found.append(
            Check("ksm_memory_saved_bytes", saved, _find(samples, "ksm_memory_saved_bytes"))
        )
    found.append(
        Check("ksm_page_size_bytes", capture.page_size, _find(samples, "ksm_page_size_bytes"))
    )
    for pid in capture.pids():
        stat = capture.process_stat(pid)
        for field in PROCESS_FIELDS:
            name = field.metric
            value = process_value(field, stat, capture.page_size) if stat.registered else None
            actual = _find(samples, name, pid=str(pid))
            found.append(Check(f'{name}{{pid="{pid}"}}', _number(value), actual))
    return found


def differences(found: list[Check]) -> list[Check]:
    return [check for check in found if check.differs]

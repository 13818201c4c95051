"""Agreement between a capture of a kernel's KSM files and the exporter's exposition.

Expected values come from the captured files as the kernel wrote them, mapped to metric names
through the exporter's own declarations (KSM_FILES, PROCESS_METRICS, the ksm_stat keys),
so a metric added there is checked without touching this module. A metric whose file the
kernel lacks must be absent.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from ksm_exporter.collector.process_families import PROCESS_METRICS
from ksm_exporter.sources.ksm_files import KSM_FILES
from ksm_exporter.sources.ksm_stat import KEYS, KsmStat
from tests.support.exposition import Samples, parse_samples

KSM = "sys/kernel/mm/ksm"
METADATA = "lab.json"
EXPOSITION = "metrics.txt"


@dataclass(frozen=True)
class Capture:
    """One kernel's files at one instant, with who is who among its processes."""

    release: str
    page_size: int
    files: dict[str, str]
    roles: dict[str, int | None] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    exposition: str = ""  # the exporter's scrape taken in that instant

    @classmethod
    def from_json(cls, text: str) -> Capture:
        document = json.loads(text)
        return cls(
            release=document["release"],
            page_size=document["page_size"],
            files=document["files"],
            roles=document["roles"],
            notes=document["notes"],
            exposition=document["exposition"],
        )

    def ksm_file(self, name: str) -> str | None:
        return self.files.get(f"{KSM}/{name}")

    def pids(self) -> list[int]:
        return sorted({int(path.split("/")[1]) for path in self.files if path.count("/") == 2
                       and path.startswith("proc/")})  # fmt: skip

    def ksm_stat_lines(self, pid: int) -> dict[str, str]:
        """{key without its colon: value}; empty for a kernel thread."""
        content = self.files.get(f"proc/{pid}/ksm_stat") or ""
        pairs = [line.split(None, 1) for line in content.splitlines()]
        return {pair[0].rstrip(":"): pair[1].strip() for pair in pairs if len(pair) == 2}

    def process_stat(self, pid: int) -> KsmStat:
        """The counters as the kernel wrote them, keyed by the exporter's field names."""
        values: dict[str, int | bool] = {}
        lines = self.ksm_stat_lines(pid)
        merging_file = (self.files.get(f"proc/{pid}/ksm_merging_pages") or "").strip()
        if "ksm_merging_pages" not in lines and merging_file:
            lines["ksm_merging_pages"] = merging_file
        for key, text in lines.items():
            known = KEYS.get(key.encode())
            if known is not None:
                values[known[0]] = text == "yes" if text in ("yes", "no") else int(text)
        return KsmStat(**values)  # type: ignore[arg-type]

    def write_tree(self, directory: Path) -> None:
        """The capture as a root with sys/ and proc/, which the exporter can be pointed at."""
        for path, content in self.files.items():
            target = directory / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, errors="surrogateescape")
        metadata = {
            "release": self.release,
            "page_size": self.page_size,
            "roles": self.roles,
            "notes": self.notes,
        }
        (directory / METADATA).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
        (directory / EXPOSITION).write_text(self.exposition)

    @classmethod
    def read_tree(cls, directory: Path) -> Capture:
        metadata = json.loads((directory / METADATA).read_text())
        files = {}
        for top in ("sys", "proc"):
            for parent, _dirs, names in os.walk(directory / top):
                for name in names:
                    path = Path(parent, name)
                    relative = str(path.relative_to(directory))
                    files[relative] = path.read_text(errors="surrogateescape")
        return cls(files=files, exposition=(directory / EXPOSITION).read_text(), **metadata)


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
        for process_metric in PROCESS_METRICS:
            name = process_metric.name
            value = process_metric.value(stat, capture.page_size) if stat.registered else None
            actual = _find(samples, name, pid=str(pid))
            found.append(Check(f'{name}{{pid="{pid}"}}', _number(value), actual))
    return found


def differences(found: list[Check]) -> list[Check]:
    return [check for check in found if check.differs]

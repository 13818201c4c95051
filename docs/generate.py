"""Writes docs/metrics.md's generated parts: `make docs` (`python -m docs.generate`).

The KSM table's rows come from the file declarations in ksm_exporter/sources/ksm_files.py;
every row's kernel cell from the lab's captures of real kernels (tests/fixtures/kernels/),
stated by lab.versions. Everything else in the document is written by hand and kept as it is.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from ksm_exporter.collector.process_families import PROCESS_METRICS
from ksm_exporter.sources import ksm_files
from ksm_exporter.sources.ksm_stat import KEYS
from lab.versions import PROCESS_BASE, lab_sources, statement

METRICS_DOC = Path(__file__).resolve().parent / "metrics.md"
ROW = re.compile(r"^(\| `(ksm_[a-z0-9_]+)` \|(?: [^|\n]* \|){3}) ([^|\n]*) \|$", re.MULTILINE)
BACKTICKED = re.compile(r"`([^`]+)`")
FAMILY_SOURCES = (
    ("ksm_process", PROCESS_BASE),
    ("ksm_ksmd_cpu", "schedstat"),
    ("ksm_tuning_", "full_scans"),  # the advice needs observed full scans, and nothing newer
)
KSM_TABLE_START = "## KSM state and counters\n\n"
KSM_TABLE_END = "\n\n## Derived savings"


def declared_sources() -> dict[str, str]:
    """{metric: source} from the exporter's declarations."""
    declared = {spec.metric: spec.name for spec in ksm_files.KSM_FILES}
    declared["ksm_advisor_mode"] = "advisor_mode"
    line_of = {field: key.decode() for key, (field, _parse) in KEYS.items()}
    for spec in PROCESS_METRICS:
        declared[spec.name] = line_of[spec.needs]
        declared[spec.name.replace("ksm_process_", "ksm_process_other_", 1)] = line_of[spec.needs]
    return declared


def source_of(metric: str, source_cell: str, known: set[str]) -> str | None:
    """The declared source; else what a family of metrics is computed from; else the first
    lab-known source the row's source cell names."""
    declared = declared_sources()
    if metric in declared:
        return declared[metric]
    for prefix, source in FAMILY_SOURCES:
        if metric.startswith(prefix):
            return source
    for text in BACKTICKED.findall(source_cell):
        name = str(text).rsplit("/", 1)[-1].rstrip(":")
        if name in known:
            return name
    return None


def with_kernel_column(text: str, kernels: dict[str, set[str]]) -> str:
    """The document with each row's kernel cell stated from the captures; rows whose source
    is not a kernel file (the page size, the exporter's own metrics) are left as they are."""
    known = set().union(*kernels.values())

    def restate(row: re.Match[str]) -> str:
        start, metric, kernel = row.group(1), row.group(2), row.group(3)
        source = source_of(metric, start.split(" | ")[3], known)
        return f"{start} {statement(source, kernels) if source else kernel} |"

    return ROW.sub(restate, text)


def ksm_table() -> str:
    """The KSM table's rows as ksm_exporter/sources/ksm_files.py declares the files; the
    kernel cells are left for `with_kernel_column`."""
    rows = [
        "| metric | type | unit | source | kernel |",
        "|---|---|---|---|---|",
        "| `ksm_available` | gauge | boolean | `<ksm>` directory readable | any |",
    ]
    for spec in ksm_files.KSM_FILES:
        source = f"`<ksm>/{spec.name}`"
        source += f" / {spec.divisor}" if spec.divisor != 1 else ""
        source += f" {spec.note}" if spec.note else ""
        rows.append(f"| `{spec.metric}` | {spec.kind} | {spec.unit} | {source} | - |")
    rows += [
        "| `ksm_advisor_mode` | gauge | boolean per `mode` label | `<ksm>/advisor_mode` "
        "(bracketed entry is active) | - |",
        "| `ksm_page_size_bytes` | gauge | bytes | `sysconf(SC_PAGE_SIZE)` | any |",
    ]
    return "\n".join(rows)


def with_declared_rows(text: str) -> str:
    """The document with its KSM table rewritten from the declarations."""
    start = text.index(KSM_TABLE_START) + len(KSM_TABLE_START)
    end = text.index(KSM_TABLE_END, start)
    return text[:start] + ksm_table() + text[end:]


def generated(text: str) -> str:
    return with_kernel_column(with_declared_rows(text), lab_sources())


def write(document: Path = METRICS_DOC) -> bool:
    """Regenerate `document` in place; True when it changed."""
    text = document.read_text()
    updated = generated(text)
    if updated != text:
        document.write_text(updated)
    return updated != text


def main() -> int:
    if write():
        print(f"{METRICS_DOC.name}: rows and kernel column restated")
    return 0


if __name__ == "__main__":
    sys.exit(main())

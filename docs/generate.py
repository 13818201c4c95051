"""Writes the generated parts of the documentation: `make docs` (`python -m docs.generate`).

docs/metrics.md's KSM table rows come from the file declarations in
ksm_exporter/sources/ksm_files.py; every row's kernel cell, and every "`name` (since X.Y)"
of the guides, from the kernel's history in ksm_exporter/sources/kernel_history.py (which the
tests hold against the lab's captures of real kernels). Everything else is written by hand
and kept as it is.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ksm_exporter.collector.process_families import MERGING_LITTLE, other_metric
from ksm_exporter.sources import kernel_history, ksm_files
from ksm_exporter.sources.ksm_stat import PROCESS_FIELDS
from lab.versions import PROCESS_BASE

DOCS = Path(__file__).resolve().parent
METRICS_DOC = DOCS / "metrics.md"
# The hand-written guides whose "`name` (since X.Y)" make docs restates from the table.
GUIDES = (DOCS / "runbook.md", DOCS / "tuning.md", DOCS / "security.md")
# Sources as old as KSM that are not KSM's: ksmd's /proc files and meminfo.
NOT_KSM = ("stat", "schedstat", "meminfo")
ROW = re.compile(r"^(\| `(ksm_[a-z0-9_]+)` \|(?: [^|\n]* \|){3}) ([^|\n]*) \|$", re.MULTILINE)
BACKTICKED = re.compile(r"`([^`]+)`")
FAMILY_SOURCES = (
    ("ksm_process", PROCESS_BASE),
    ("ksm_ksmd_cpu", "schedstat"),
    ("ksm_tuning_", "full_scans"),  # the advice needs observed full scans, and nothing newer
)
KSM_TABLE_START = "## KSM state and counters\n\n"
KSM_TABLE_END = "\n\n## Derived savings"
PROCESS_TABLE_START = "| `ksm_processes_merging` |"
PROCESS_TABLE_END = "\n\n## CPU cost of scanning"


@dataclass(frozen=True, slots=True)
class FieldDoc:
    """What the documentation says of a per-process field, beyond its declaration."""

    unit: str = "pages"
    note: str = ""  # after the line's key in the source cell
    other_unit: str | None = None  # the sum's unit, where it reads differently
    other_source: str | None = None  # the sum's source cell, where it is not the key's sum
    colon: bool = False  # the kernel writes the key with a colon


FIELD_DOCS = {
    "rmap_items": FieldDoc("rmap items (64 bytes each)", other_unit="rmap items"),
    "profit": FieldDoc(
        "bytes (signed)",
        "; where the kernel has no such line (6.1), (merging + zero pages) \N{MULTIPLICATION SIGN} "
        "page size \N{MINUS SIGN} rmap items \N{MULTIPLICATION SIGN} 64",
        other_source="sum of the profit of those processes",
    ),
    "merge_any": FieldDoc(
        "boolean", " (all memory mergeable, `prctl(PR_SET_MEMORY_MERGE)`)", colon=True
    ),
    "mergeable": FieldDoc("boolean", " (some memory registered with KSM)", colon=True),
}


def declared_sources() -> dict[str, str]:
    """{metric: source} from the exporter's declarations."""
    declared = {spec.metric: spec.name for spec in ksm_files.KSM_FILES}
    declared["ksm_advisor_mode"] = "advisor_mode"
    line_of = {spec.name: spec.key for spec in PROCESS_FIELDS}
    for spec in PROCESS_FIELDS:
        declared[spec.metric] = line_of[spec.needs or spec.name]
        declared[other_metric(spec)] = line_of[spec.needs or spec.name]
    declared[MERGING_LITTLE] = line_of["rmap_items"]  # merging little is told by the rmap items
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


def kernel_cell(source: str) -> str:
    """`any` for what every kernel with KSM has, else `since 6.8`: the oldest release that
    gives the source in any form (ksm_merging_pages was a file of its own before a line)."""
    if source in NOT_KSM:
        return "any"
    try:
        arrival = kernel_history.first(source)
    except KeyError:
        return "not in the kernel table"
    return "any" if arrival.release == kernel_history.FIRST_KSM else f"since {arrival.shown}"


def with_kernel_column(text: str) -> str:
    """The document with each row's kernel cell stated from the kernel's history; rows whose
    source is not a kernel file (the page size, the exporter's own metrics) are left as
    they are."""
    known = {arrival.name for arrival in kernel_history.ARRIVALS} | set(NOT_KSM)

    def restate(row: re.Match[str]) -> str:
        start, metric, kernel = row.group(1), row.group(2), row.group(3)
        source = source_of(metric, start.split(" | ")[3], known)
        return f"{start} {kernel_cell(source) if source else kernel} |"

    return ROW.sub(restate, text)


# How prose says a release brought something: "since 6.7", "came with 6.8", "released in 6.7".
ARRIVED = r"(?:since|came with|came in|released in|added in|introduced in) "
# "`smart_scan` (since 6.7)", "the scan-time advisor, since 6.8": a name of the table, then
# the release that brought it. The longest names first, so that no name matches half of one.
NAMES = sorted({arrival.name for arrival in kernel_history.ARRIVALS}, key=len, reverse=True)
MENTION = re.compile(
    r"(?<![\w:-])(?P<tick>`?)(?P<name>" + "|".join(map(re.escape, NAMES)) + r")(?P=tick)"
    r"(?P<between>(?: \(|, | )" + ARRIVED + r")(?P<release>\d+(?:\.\d+)+)"
)
# A release stated in prose; not a table's kernel cell, which with_kernel_column writes.
STATED = re.compile(r"(?<!\| )\b" + ARRIVED + r"(\d+(?:\.\d+)+)")


def restated(text: str) -> str:
    """`text` with the release of every mention of a fact taken from the table."""

    def restate(mention: re.Match[str]) -> str:
        before = mention.group(0)[: mention.start("release") - mention.start()]
        return before + kernel_history.since(mention["name"])

    return MENTION.sub(restate, text)


def untied(text: str) -> list[str]:
    """Every "since X.Y" (or "came with X.Y", ...) that follows no name of the table: a
    release stated by hand."""
    tied = {mention.start("release") for mention in MENTION.finditer(text)}
    return [
        text[max(0, found.start() - 40) : found.end()]
        for found in STATED.finditer(text)
        if found.start(1) not in tied
    ]


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


def process_rows() -> str:
    """The per-process table's rows from ksm_exporter/sources/ksm_stat.py's declarations:
    each field's metric, then the count of the other processes and each field's sum."""
    rows, others = [], []
    for spec in PROCESS_FIELDS:
        doc = FIELD_DOCS.get(spec.name, FieldDoc())
        key = f"`{spec.key}{':' if doc.colon else ''}`"
        rows.append(f"| `{spec.metric}` | gauge | {doc.unit} | {key}{doc.note} | - |")
        if spec.other_help is not None:
            source = doc.other_source or f"sum of `{spec.key}` of those processes"
            unit = doc.other_unit or doc.unit
            others.append(f"| `{other_metric(spec)}` | gauge | {unit} | {source} | - |")
    other_processes = (
        "| `ksm_process_other_processes` | gauge | processes | registered processes without "
        "series of their own | - |"
    )
    return "\n".join([*rows, other_processes, *others])


def with_declared_rows(text: str) -> str:
    """The document with its KSM table and its per-process rows rewritten from the
    declarations."""
    start = text.index(KSM_TABLE_START) + len(KSM_TABLE_START)
    end = text.index(KSM_TABLE_END, start)
    text = text[:start] + ksm_table() + text[end:]
    start = text.index("\n", text.index(PROCESS_TABLE_START)) + 1
    end = text.index(PROCESS_TABLE_END, start)
    return text[:start] + process_rows() + text[end:]


def generated(text: str) -> str:
    """docs/metrics.md as make docs writes it."""
    return restated(with_kernel_column(with_declared_rows(text)))


def write(document: Path = METRICS_DOC) -> bool:
    """Regenerate `document` (docs/metrics.md or a copy) in place; True when it changed."""
    return _rewrite(document, generated)


def _rewrite(document: Path, generate: Callable[[str], str]) -> bool:
    text = document.read_text()
    updated = generate(text)
    if updated != text:
        document.write_text(updated)
    return updated != text


def main() -> int:
    if write():
        print(f"{METRICS_DOC.name}: rows and kernel column restated")
    for guide in GUIDES:
        if _rewrite(guide, restated):
            print(f"{guide.name}: kernel releases restated")
    return 0


if __name__ == "__main__":
    sys.exit(main())

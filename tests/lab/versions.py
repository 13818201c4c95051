"""The kernel column of docs/metrics.md, from the lab's captures of real kernels.

For each metric's source (a KSM file, a `ksm_stat` line, ksmd's `schedstat`), the column
states the oldest lab kernel that has it and the newest that lacks it: `in 6.12, not in 6.1`
(the source arrived in between), or `in 6.1` when the oldest lab kernel already has it.

`python -m tests.lab.versions` rewrites the column; a unit test fails while it is stale.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from ksm_exporter.collector.process_families import PROCESS_METRICS
from ksm_exporter.sources import ksm_files
from ksm_exporter.sources.ksm_stat import KEYS
from tests.lab.compare import Capture
from tests.lab.measure import KERNEL_CAPTURES
from tests.support.metrics_doc import METRICS_DOC
from tests.support.paths import REPO

ROW = re.compile(r"^(\| `(ksm_[a-z0-9_]+)` \|(?: [^|\n]* \|){3}) ([^|\n]*) \|$", re.MULTILINE)
BACKTICKED = re.compile(r"`([^`]+)`")
# Where a per-process figure comes from once no ksm_stat line is named: the counter every
# kernel with per-process KSM figures has.
PROCESS_BASE = "ksm_merging_pages"
FAMILY_SOURCES = (
    ("ksm_process", PROCESS_BASE),
    ("ksm_ksmd_cpu", "schedstat"),
    ("ksm_tuning_", "full_scans"),  # the advice needs observed full scans, and nothing newer
)


def version(release: str) -> tuple[int, int]:
    major, minor = release.split(".")[:2]
    return int(major), int(minor)


def shown(release: str) -> str:
    return "{}.{}".format(*version(release))


def sources(capture: Capture) -> set[str]:
    """What this kernel offers: KSM file names, ksm_stat keys (no colon), ksmd's files."""
    found = {path.rsplit("/", 1)[1] for path in capture.files if path.startswith("sys/")}
    for pid in capture.pids():
        if capture.process_stat(pid).registered:
            found |= set(capture.ksm_stat_lines(pid))
            if capture.files.get(f"proc/{pid}/{PROCESS_BASE}", "").strip():
                found.add(PROCESS_BASE)
    ksmd = capture.roles.get("ksmd")
    found |= {name for name in ("stat", "schedstat") if f"proc/{ksmd}/{name}" in capture.files}
    if "proc/meminfo" in capture.files:
        found.add("meminfo")
    return found


def lab_sources(directory: Path = KERNEL_CAPTURES) -> dict[str, set[str]]:
    """{kernel version: its sources}, oldest first."""
    captures = [Capture.read_tree(path) for path in directory.iterdir() if path.is_dir()]
    captures.sort(key=lambda capture: version(capture.release))
    return {shown(capture.release): sources(capture) for capture in captures}


def statement(source: str, kernels: dict[str, set[str]]) -> str:
    having = [name for name, offered in kernels.items() if source in offered]
    if not having:
        return f"not in {list(kernels)[-1]}"
    oldest = having[0]
    lacking = [name for name in list(kernels)[: list(kernels).index(oldest)]]
    return f"in {oldest}, not in {lacking[-1]}" if lacking else f"in {oldest}"


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


KSM_TABLE_START = "## KSM state and counters\n\n"
KSM_TABLE_END = "\n\n## Derived savings"


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


def main() -> int:
    text = METRICS_DOC.read_text()
    updated = generated(text)
    if updated != text:
        METRICS_DOC.write_text(updated)
        print(f"{METRICS_DOC.relative_to(REPO)}: rows and kernel column restated")
    return 0


if __name__ == "__main__":
    sys.exit(main())

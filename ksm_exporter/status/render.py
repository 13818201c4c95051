"""The status model as text for an 80-column terminal, or as JSON for scripts."""

from __future__ import annotations

import copy
import dataclasses
import json
import textwrap
from typing import Any

from ksm_exporter.sources.kernel_file import Problem
from ksm_exporter.status.formats import shorten, size
from ksm_exporter.status.model import Figures, ProcessTable, Row, Status

WIDTH = 80
LABEL_WIDTH = 15  # the label column; values and notes start after it
COMMAND_INDENT = "  "  # commands stand out from the rows, whole, to be copied


def wrapped(text: str) -> list[str]:
    """`text` in lines that fit beside the label column; a word longer than the room (a path)
    stays whole."""
    room = WIDTH - LABEL_WIDTH
    return textwrap.wrap(text, room, break_long_words=False, break_on_hyphens=False) or [""]


def row_lines(row: Row) -> list[str]:
    """The label, then the value beside it; each note under the value; each command whole."""
    if row.value:
        first, *rest = wrapped(row.value)
        lines = [f"{row.label:<{LABEL_WIDTH - 1}} {first}", *rest]
    else:
        lines = [f"{row.label}:"]
    for note in row.notes:
        lines += wrapped(note)
    lines = lines[:1] + [f"{'':{LABEL_WIDTH}}{line}" for line in lines[1:]]
    return lines + [f"{COMMAND_INDENT}{command}" for command in row.commands]


def process_lines(table: ProcessTable) -> list[str]:
    lines = row_lines(table.summary)
    if not table.rows:
        return lines
    head = f"{'PID':>7} {'COMM':<15} {'MERGING':>11} {'PROFIT':>11}  VM OR CGROUP"
    lines += ["", "Top processes by merging pages", head]
    room = WIDTH - len(head) + len("VM OR CGROUP")
    for row in table.rows:
        lines.append(
            f"{row.pid:>7} {row.comm[:15]:<15} {size(row.merging_bytes):>11} "
            f"{size(row.profit_bytes):>11}  {shorten(row.where, room)}"
        )
    return lines


def problem_lines(problem: Problem) -> list[str]:
    """The reason, then the path on a line of its own: never cut, so it can be copied."""
    return [f"{'Problem':<{LABEL_WIDTH}}{problem.reason}:", f"{'':{LABEL_WIDTH}}{problem.path}"]


def render_text(status: Status) -> str:
    blocks = [
        [line for row in section.rows for line in row_lines(row)] for section in status.sections
    ]
    blocks.append(process_lines(status.processes))
    blocks.append([line for problem in status.problems for line in problem_lines(problem)])
    return "\n\n".join("\n".join(lines) for lines in blocks if lines) + "\n"


def put(document: dict[str, Any], figures: Figures) -> None:
    """Each figure at its dotted path, over what is there; a new key goes last."""
    for path, value in figures.items():
        *parents, key = path.split(".")
        place = document
        for name in parents:
            if not isinstance(place.get(name), dict):
                place[name] = {}
            place = place[name]
        place[key] = copy.deepcopy(value)  # the model is never written to


def processes_json(table: ProcessTable) -> dict[str, Any] | None:
    counts = table.counts
    if counts is None:
        return None
    return {
        "registered": counts.registered,
        "merging": counts.merging,
        "unreadable": counts.unreadable,
        "top": [row.figures() for row in table.rows],
    }


def to_json(status: Status) -> dict[str, Any]:
    """Each section's figures, then its rows'; the processes; the problems."""
    document: dict[str, Any] = {}
    for section in status.sections:
        put(document, section.figures)
        for row in section.rows:
            put(document, row.figures)
    document["processes"] = processes_json(status.processes)
    document["problems"] = [dataclasses.asdict(p) for p in status.problems]
    return document


def render_json(status: Status) -> str:
    return json.dumps(to_json(status), indent=2) + "\n"

"""What `status` shows, as one typed model: built once per view from a Snapshot
(status/build.py `build_status`), then rendered three ways, none reading another's output:
terminal text and JSON (status/render.py), and HTML (status/page.py).

- `Status`: the page's tiles, the sections, the processes table and the problems.
- `Section`: a heading and its rows, and `figures`: the section's part of the JSON document.
- `Row`: a label, a value, notes under the value, the exact commands to run as root, and
  `figures`: the values the row states, as scripts read them, by dotted JSON path
  ("memory.saved_bytes"). The JSON renderer writes each row's figures over its section's, so
  what a row says and what the JSON says cannot differ.

The text puts a row's label in a 15-column label column and wraps its value and each note to
80 columns; the page puts the label in a <dt> and the value, notes and commands in one <dd>.
Write values and notes as sentences, never pre-broken for a width.

Adding a row: return it from its section's builder (status/build.py; the Advice section's is
status/advice.py), with the figures scripts should read from it; the terminal, the page and
the JSON all show it, and a figure at a new path becomes a new JSON key.
Adding a section: write a builder `(Snapshot, View) -> Section` in status/build.py and list it
in `SECTIONS` there, in the order the terminal shows it; its `figures` give its JSON keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum

from ksm_exporter.sources.kernel_file import Problem
from ksm_exporter.sources.process_identity import ProcessIdentity

Figures = Mapping[str, object]  # dotted JSON path -> a value json.dumps can write


class View(Enum):
    """Where the model is shown: the figures differ only in what each one has watched."""

    COMMAND = "command"  # `status`: a window it watched itself, and its --window to widen it
    SERVER = "server"  # the server's page: its sampler's last readings since it started


@dataclass(frozen=True, slots=True)
class Row:
    label: str
    value: str = ""
    notes: tuple[str, ...] = ()  # sentences under the value
    commands: tuple[str, ...] = ()  # the exact lines to run as root
    figures: Figures = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Section:
    key: str  # the page's id for it
    heading: str  # the page's heading; the terminal shows none
    rows: tuple[Row, ...]
    figures: Figures = field(default_factory=dict)  # written before its rows' figures
    wide: bool = False  # on the page, the whole width rather than a column of the grid


@dataclass(frozen=True, slots=True)
class Tile:
    """One figure at the top of the page."""

    key: str
    name: str
    value: str
    sub: str = ""


@dataclass(frozen=True, slots=True)
class ProcessRow:
    """One top process: what the table shows and what the JSON lists."""

    pid: int
    identity: ProcessIdentity
    counters: Mapping[str, object]  # ksm_stat's fields by name, as the kernel wrote them
    merging_bytes: int | None
    profit_bytes: int | None

    @property
    def comm(self) -> str:
        return self.identity.comm

    @property
    def where(self) -> str:
        """The guest's name, else the cgroup path."""
        vm = self.identity.vm
        return f"vm {vm}" if vm else self.identity.cgroup

    def figures(self) -> dict[str, object]:
        return {
            "pid": self.pid,
            **self.identity.as_dict(),
            **self.counters,
            "profit_bytes": self.profit_bytes,
        }


@dataclass(frozen=True, slots=True)
class ProcessCounts:
    registered: int
    merging: int
    unreadable: int


@dataclass(frozen=True, slots=True)
class ProcessTable:
    summary: Row  # how many are registered and merging, or why nothing is known
    counts: ProcessCounts | None  # None: not read, or no per-process counters on this kernel
    rows: tuple[ProcessRow, ...]  # the top processes by merging pages


@dataclass(frozen=True, slots=True)
class Status:
    tiles: tuple[Tile, ...]
    sections: tuple[Section, ...]
    processes: ProcessTable
    problems: tuple[Problem, ...]

"""docs/metrics.md's table of metrics: the one reader of it for every test."""

from __future__ import annotations

import re
from pathlib import Path

from harness.paths import REPO

METRICS_DOC = REPO / "docs" / "metrics.md"
# | `ksm_run` | gauge | ...
ROW = re.compile(r"^\| `(ksm_[a-z0-9_]+)` \| (gauge|counter|info) \|", re.MULTILINE)


CELLS = re.compile(r"^\| `(ksm_[a-z0-9_]+)` \| (.*) \|$", re.MULTILINE)


def documented_types(document: Path = METRICS_DOC) -> dict[str, str]:
    """{metric name: its type} as docs/metrics.md lists them."""
    return dict(ROW.findall(document.read_text()))


def documented_rows(document: Path = METRICS_DOC) -> dict[str, list[str]]:
    """{metric name: the cells after the name} of every row of docs/metrics.md's tables."""
    return {name: cells.split(" | ") for name, cells in CELLS.findall(document.read_text())}


def documented_metrics() -> frozenset[str]:
    """The metric names docs/metrics.md lists, which a test holds equal to what is served."""
    return frozenset(documented_types())

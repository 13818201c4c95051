"""What a document names (metrics, rules, alerts, flags, sysfs files, panels, links) and
what the project defines, so a test can hold the two against each other."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import rule_files
from harness.paths import REPO
from ksm_exporter.cli import build_parser
from ksm_exporter.sources.ksm_files import DECLARED
from ksm_exporter.sources.process_identity import PROCESS_LABELS

# A metric name, unless it is the last part of a path (`/proc/<pid>/ksm_stat`) or of a rule
# name; a trailing `_*` or `*` makes it a prefix (`ksm_process_*`).
METRIC = re.compile(r"(?<![\w/:])(ksm_[a-z0-9_]*[a-z0-9])(?![a-z0-9:]|_[a-z0-9])(_?\*)?")
# Recording rules follow the level:metric:operations convention: two colons or more.
RULE = re.compile(r"(?<![\w:])([a-z_][a-z0-9_]*(?::[a-z_][a-z0-9_]*){2,})(?![\w:])")
ALERT = re.compile(r"\bKsm[A-Za-z]+\b")
# The exporter's flags are dotted (`--collector.process.limit`); other tools' are not.
FLAG = re.compile(r"(?<![\w-])--(?:no-)?[a-z][a-z0-9-]*\.[a-z0-9.-]*[a-z0-9]")
# In these documents bold text names a dashboard panel, and nothing else.
PANEL = re.compile(r"\*\*(.+?)\*\*")
# A backticked snake_case word that is not a metric, nor a label of the per-process series
# (`vm_uuid`), names a file in /sys/kernel/mm/ksm.
SYSFS_FILE = re.compile(r"`([a-z]+(?:_[a-z]+)+)`")
LINK = re.compile(r"\]\(([^)\s]+)\)")


@dataclass(frozen=True)
class References:
    metrics: frozenset[str]
    metric_prefixes: frozenset[str]
    rules: frozenset[str]
    alerts: frozenset[str]
    flags: frozenset[str]
    sysfs_files: frozenset[str]
    panels: frozenset[str]
    links: frozenset[str]


def prose(text: str) -> str:
    """The text without code blocks and code spans, where `](` is no link."""
    without_blocks = re.sub(r"^( *)```.*?^\1```", "", text, flags=re.MULTILINE | re.DOTALL)
    return re.sub(r"`[^`]*`", "", without_blocks)


def references(text: str) -> References:
    metrics = {m.group(1) for m in METRIC.finditer(text) if not m.group(2)}
    prefixes = {m.group(1) for m in METRIC.finditer(text) if m.group(2)}
    return References(
        metrics=frozenset(metrics),
        metric_prefixes=frozenset(prefixes),
        rules=frozenset(RULE.findall(text)),
        alerts=frozenset(ALERT.findall(text)),
        flags=frozenset(FLAG.findall(text)),
        sysfs_files=frozenset(
            w
            for w in SYSFS_FILE.findall(text)
            if not w.startswith("ksm_") and w not in PROCESS_LABELS
        ),
        panels=frozenset(PANEL.findall(text)),
        links=frozenset(LINK.findall(prose(text))),
    )


# --- what the project defines -------------------------------------------------------------


def _rules(key: str) -> frozenset[str]:
    return frozenset(rule[key] for rule in rule_files.rules() if key in rule)


def recording_rules() -> frozenset[str]:
    return _rules("record")


def alerts() -> frozenset[str]:
    return _rules("alert")


def flags() -> frozenset[str]:
    """Every option the command line accepts, as `--help` shows it."""
    return frozenset(re.findall(r"(?<![\w-])--[a-z][\w.-]*[a-z0-9]", build_parser().format_help()))


def sysfs_files() -> frozenset[str]:
    return frozenset(DECLARED.names)


def _panels(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for panel in node.get("panels", []):
            if isinstance(panel, dict) and isinstance(panel.get("title"), str):
                yield panel["title"]
        for value in node.values():
            yield from _panels(value)
    elif isinstance(node, list):
        for item in node:
            yield from _panels(item)


def panel_titles() -> frozenset[str]:
    titles: set[str] = set()
    for path in sorted((REPO / "dashboards").glob("*.json")):
        titles.update(_panels(json.loads(path.read_text())))
    return frozenset(titles)


def heading_anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def broken_link(document: Path, target: str) -> str | None:
    """Why a relative link does not resolve, or None; web links are not followed."""
    if re.match(r"[a-z]+:", target):
        return None
    path_part, _, anchor = target.partition("#")
    path = (document.parent / path_part).resolve() if path_part else document
    if not path.exists():
        return f"{target}: no such file"
    if anchor:
        headings = re.findall(r"^#+\s+(.+)$", prose(path.read_text()), re.MULTILINE)
        if anchor not in {heading_anchor(h) for h in headings}:
            return f"{target}: no heading with that anchor"
    return None

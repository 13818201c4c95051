"""The kernel's history (ksm_exporter/sources/kernel_history.py) against the lab's captures of
real kernels, and every release the guides, dashboards, rules and messages state against the
history: a fact lives in the table, and prose only names it ("`smart_scan` (since 6.7)")."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from docs.generate import restated, untied
from harness.paths import REPO
from ksm_exporter.sources.kernel_history import ARRIVALS, Arrival, Where, first, since
from ksm_exporter.sources.ksm_files import KSM_FILES
from ksm_exporter.sources.ksm_stat import PROCESS_FIELDS
from lab.captures import KERNEL_CAPTURES, Capture
from lab.versions import version

pytestmark = pytest.mark.unit

CAPTURES = sorted(
    (Capture.read_tree(path) for path in KERNEL_CAPTURES.iterdir() if path.is_dir()),
    key=lambda capture: version(capture.release),
)
# How a capture shows a behaviour no file of its own names.
FEATURES: dict[str, Callable[[Capture], bool]] = {
    "scan-time advisor": lambda capture: "scan-time" in (capture.ksm_file("advisor_mode") or ""),
    # The lab starts its prctl child only where PR_SET_MEMORY_MERGE succeeds (6.1: EINVAL).
    "PR_SET_MEMORY_MERGE": lambda capture: capture.roles.get("prctl") is not None,
}
# Everything that states a release in prose: checked, and the guides restated by make docs.
STATING = sorted(
    {
        *(REPO / "docs").glob("*.md"),
        REPO / "README.md",
        *(REPO / "dashboards").glob("*.py"),
        *(REPO / "dashboards").glob("*.json"),
        *(REPO / "mixin").glob("*.libsonnet"),
        *(REPO / "ksm_exporter").rglob("*.py"),
    }
)


# How the lab words what its captures show ("in 6.12, not in 6.1"): a range, not a release.
LAB_STATEMENT = re.compile(r"\bin \d+\.\d+, not in \d+\.\d+")


def offered(capture: Capture, arrival: Arrival) -> bool:
    """Whether the captured kernel gives the file, line or behaviour."""
    registered = [pid for pid in capture.pids() if capture.registered(pid)]
    if arrival.where is Where.SYSFS:
        return capture.ksm_file(arrival.name) is not None
    if arrival.where is Where.KSM_STAT:
        return any(arrival.name in capture.ksm_stat_lines(pid) for pid in registered)
    if arrival.where is Where.PROC:
        return any(f"proc/{pid}/{arrival.name}" in capture.files for pid in registered)
    return FEATURES[arrival.name](capture)


def test_the_lab_captured_kernels_on_both_sides_of_the_newest_facts() -> None:
    """The check below proves something only with kernels older and newer than the table's
    releases: 6.1 before general_profit and the advisor, 6.18 after ksm_merge_any."""
    kernels = [version(capture.release) for capture in CAPTURES]
    assert kernels[0] < first("general_profit").release
    assert kernels[-1] >= first("ksm_merge_any").release


@pytest.mark.parametrize(
    "arrival", ARRIVALS, ids=lambda row: f"{row.where.name.lower()}-{row.name}"
)
def test_each_captured_kernel_agrees_with_the_history(arrival: Arrival) -> None:
    """Absent from every captured kernel older than its release, present in every other
    (unless a kernel option it needs may be off there)."""
    for capture in CAPTURES:
        newer = version(capture.release) >= arrival.release
        if newer and arrival.needs:
            continue
        assert offered(capture, arrival) == newer, (
            f"{capture.release} {'lacks' if newer else 'has'} {arrival.name}, "
            f"which the table dates to {arrival.shown} ({arrival.commit})"
        )


def test_every_file_and_line_the_exporter_reads_has_a_release() -> None:
    names = {spec.name for spec in KSM_FILES} | {"advisor_mode"}
    names |= {spec.key for spec in PROCESS_FIELDS}
    assert sorted(name for name in names if not any(row.name == name for row in ARRIVALS)) == []
    assert all(row.commit and row.release for row in ARRIVALS)
    keys = [(row.name, row.where) for row in ARRIVALS]
    assert len(keys) == len(set(keys))


def test_the_advisor_came_with_6_8() -> None:
    """The release Andrew Morton's "MM updates for 6.8-rc1" merged the advisor's series in,
    not 6.12, the first lab kernel that has it."""
    assert since("scan-time advisor") == since("advisor_mode") == "6.8"
    assert first("smart_scan").release < first("advisor_mode").release


def test_restating_corrects_a_stated_release_and_leaves_prose_alone() -> None:
    stale = "`smart_scan` (since 6.12) is on; the scan-time advisor, since 6.7; with smart_scan"
    right = "`smart_scan` (since 6.7) is on; the scan-time advisor, since 6.8; with smart_scan"
    assert restated(stale) == right
    assert restated(right) == right
    assert restated("Linux 6.7.") == "Linux 6.7."


def test_a_release_tied_to_no_fact_is_found() -> None:
    assert untied("`smart_scan` (since 6.7), and Linux since 6.7") == [
        "`smart_scan` (since 6.7), and Linux since 6.7"
    ]
    assert untied("the advisor (released in 6.7)") == ["the advisor (released in 6.7"]
    assert restated("the scan-time advisor came with 6.7") == "the scan-time advisor came with 6.8"
    assert untied("| `ksm_smart_scan` | gauge | boolean | `<ksm>/smart_scan` | since 6.7 |") == []


@pytest.mark.parametrize("path", STATING, ids=lambda path: str(path.relative_to(REPO)))
def test_every_stated_release_is_the_table_s(path: Path) -> None:
    text = path.read_text()
    assert untied(text) == [], "name the fact: `name` (since X.Y)"
    assert LAB_STATEMENT.findall(text) == [], "state the release of the kernel's history"
    assert restated(text) == text, "the release differs from the kernel's history: make docs"

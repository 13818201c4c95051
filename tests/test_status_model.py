"""One status model, three renderings: the terminal's text, the JSON and the page each render
the model `build_status` returns, so a row changed or added in the model changes all three."""

from __future__ import annotations

import json
from dataclasses import replace
from html import escape
from pathlib import Path

import pytest

from ksm_exporter.status.build import build_status
from ksm_exporter.status.model import Row, Section, Status, View
from ksm_exporter.status.page import PageContext, page
from ksm_exporter.status.render import render_json, render_text
from tests.test_status import busy_ksmd_snapshot
from tests.test_status_advice import watched
from tests.test_status_page import parsed

pytestmark = pytest.mark.unit


def renderings(status: Status) -> tuple[list[str], dict[str, object], str]:
    html = page(status, (), PageContext("host", "/metrics", 0.0))
    return render_text(status).splitlines(), json.loads(render_json(status)), html


def with_row(status: Status, key: str, label: str, row: Row | None) -> Status:
    """`status` with the row `label` of section `key` replaced by `row`, or `row` added."""
    sections = []
    for section in status.sections:
        rows = list(section.rows)
        if section.key == key:
            place = [i for i, r in enumerate(rows) if r.label == label]
            if place:
                del rows[place[0]]
            if row is not None:
                rows.insert(place[0] if place else len(rows), row)
        sections.append(replace(section, rows=tuple(rows)))
    return replace(status, sections=tuple(sections))


def test_a_changed_row_changes_the_text_the_json_and_the_page(tmp_path: Path) -> None:
    status = build_status(busy_ksmd_snapshot(tmp_path, scans_at=(2, 7)))
    text, document, html = renderings(status)
    # The fixture: (pages_sharing 30000 + ksm_zero_pages 250) pages of 4096 bytes.
    assert "Memory saved   118.2 MiB (0.74% of 15.6 GiB RAM)" in text
    assert document["memory"]["saved_bytes"] == 30250 * 4096  # type: ignore[index]
    assert "<dt>Memory saved</dt><dd>118.2 MiB (0.74% of 15.6 GiB RAM)</dd>" in html

    changed = with_row(
        status,
        "memory",
        "Memory saved",
        Row(
            "Memory saved",
            "1.0 MiB (0.01% of 15.6 GiB RAM)",
            figures={"memory.saved_bytes": 1 << 20},
        ),
    )
    text, document, html = renderings(changed)
    assert "Memory saved   1.0 MiB (0.01% of 15.6 GiB RAM)" in text
    assert not [line for line in text if "118.2 MiB" in line]
    assert document["memory"]["saved_bytes"] == 1 << 20  # type: ignore[index]
    assert "<dt>Memory saved</dt><dd>1.0 MiB (0.01% of 15.6 GiB RAM)</dd>" in html
    assert list(document) == [
        "ksm",
        "memory",
        "ksmd",
        "full_scan",
        "advice",
        "why",
        "sharing",
        "processes",
        "problems",
    ]


def test_a_row_added_to_a_section_shows_in_all_three(tmp_path: Path) -> None:
    """What adding a row takes: the row, with the figure scripts read at a new path."""
    status = build_status(busy_ksmd_snapshot(tmp_path, scans_at=(2, 7)))
    why = "no process has two identical pages in the last full scan"
    added = with_row(
        status,
        "memory",
        "Why",
        Row("Why", why, ("<script>1</script>",), figures={"memory.why": why}),
    )
    text, document, html = renderings(added)
    assert f"Why            {why}" in text
    assert f"{'':15}<script>1</script>" in text
    assert document["memory"]["why"] == why  # type: ignore[index]
    assert f"<dt>Why</dt><dd>{why}<div" in html
    assert escape("<script>1</script>") in html
    assert "<script>" not in html


def test_a_changed_process_row_changes_all_three(tmp_path: Path) -> None:
    status = build_status(busy_ksmd_snapshot(tmp_path, scans_at=(2, 7)))
    first, *rest = status.processes.rows
    assert first.pid == 1201
    processes = replace(status.processes, rows=(replace(first, pid=4321), *rest))
    text, document, html = renderings(replace(status, processes=processes))
    assert "   4321 qemu-system-x86   468.8 MiB   456.8 MiB  vm web01" in text
    top = document["processes"]["top"]  # type: ignore[index]
    assert [p["pid"] for p in top] == [4321, 1302, 2200]
    assert '<tr><td class="n">4321</td><td>qemu-system-x86</td>' in html
    assert ">1201<" not in html


def definition_lists(html: str) -> list[list[str]]:
    """The children of each <dl>, in order: their tag names."""
    lists: list[list[str]] = []
    for tag, _attrs in parsed(html).elements:
        if tag == "dl":
            lists.append([])
        elif lists and tag in ("dt", "dd"):
            lists[-1].append(tag)
    return lists


@pytest.mark.parametrize("view", list(View))
def test_every_label_has_one_value_beside_it(tmp_path: Path, view: View) -> None:
    """A <dd> after a <dd> falls into the label column of the list's grid: each row is one
    <dt> and one <dd>, however many notes and commands it has."""
    snapshot, _sim, _roots = watched(tmp_path, advisor=True)
    status = build_status(snapshot, view)
    advice = next(s for s in status.sections if s.key == "advice")
    assert [r for r in advice.rows if r.notes]
    assert [r for r in advice.rows if r.commands]
    html = page(status, (), PageContext("host", "/metrics", 0.0))
    lists = definition_lists(html)
    assert len(lists) >= 4  # KSM, Memory, Cost, Advice, and the problems
    for children in lists:
        assert children == ["dt", "dd"] * (len(children) // 2)


def test_the_server_view_leaves_out_what_only_the_command_can_do(tmp_path: Path) -> None:
    """`--window` widens only the command's window: the page never suggests it."""
    snapshot, _sim, _roots = watched(tmp_path, window=1.0)
    command = render_text(build_status(snapshot, View.COMMAND))
    served = build_status(snapshot, View.SERVER)
    assert "--window 3" in command
    assert "--window" not in render_text(served)
    assert "--window" not in page(served, (), PageContext("host", "/metrics", 0.0))
    assert render_json(served) == render_json(build_status(snapshot, View.COMMAND))


def test_a_section_without_rows_shows_nothing(tmp_path: Path) -> None:
    status = build_status(busy_ksmd_snapshot(tmp_path, scans_at=(2, 7)))
    empty = replace(status, sections=(Section("empty", "Nothing", ()), *status.sections))
    assert render_text(empty) == render_text(status)
    assert "Nothing" not in page(empty, (), PageContext("host", "/metrics", 0.0))

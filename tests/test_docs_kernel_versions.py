"""docs/metrics.md's kernel column is the kernel's history (ksm_exporter/sources/
kernel_history.py), and the captures of real kernels show each generation's files."""

from __future__ import annotations

import re

import pytest

from docs.generate import generated, with_kernel_column
from ksm_exporter.sources.ksm_files import KSM_FILES
from ksm_exporter.sources.ksm_stat import PROCESS_FIELDS
from lab.captures import KERNEL_CAPTURES, Capture
from lab.versions import sources, version
from tests.support.metrics_doc import METRICS_DOC

pytestmark = pytest.mark.unit

ORIGINAL_FILES = 14  # 6.1: run ... use_zero_pages, max_page_sharing and the stable_node files


def test_the_ksm_table_and_kernel_column_are_generated() -> None:
    """Rows from the file declarations, kernel cells from the kernel's history."""
    text = METRICS_DOC.read_text()
    assert generated(text) == text, "run: make docs"


def test_a_stale_kernel_cell_is_restated() -> None:
    text = METRICS_DOC.read_text()
    row = re.compile(r"^(\| `ksm_general_profit_bytes` .*\|) [^|]+ \|$", re.MULTILINE)
    stale = row.sub(r"\1 since 6.12 |", text)
    assert stale != text
    assert with_kernel_column(stale) == text
    assert "| `<ksm>/general_profit` | since 6.4 |" in text


def ksm_stat_lines(capture: Capture) -> set[str]:
    pid = capture.roles["madvise"]
    assert pid is not None
    return set(capture.ksm_stat_lines(pid))


def test_the_captures_show_each_generation_s_files_and_ksm_stat_lines() -> None:
    captures = sorted(
        (Capture.read_tree(path) for path in KERNEL_CAPTURES.iterdir() if path.is_dir()),
        key=lambda capture: version(capture.release),
    )
    oldest, newest = captures[0], captures[-1]
    declared = {spec.name for spec in KSM_FILES} | {"advisor_mode"}
    assert len(sources(oldest) & declared) == ORIGINAL_FILES
    assert ksm_stat_lines(oldest) == {"ksm_rmap_items"}
    assert oldest.files[f"proc/{oldest.roles['madvise']}/ksm_merging_pages"].strip() != "0"
    assert declared <= sources(newest) | {"merge_across_nodes"}  # that one only with NUMA
    assert ksm_stat_lines(newest) == {spec.key for spec in PROCESS_FIELDS}

"""The reader behind `status --why` on procfs trees shaped as the kernel writes them: a
process that exits between the sweep and the read of its smaps is said to have exited, and
the host's THP mode and vmstat are read only where a check needs them."""

from __future__ import annotations

from pathlib import Path

import pytest

from ksm_exporter.reading.why import Explainer
from ksm_exporter.sources.ksm_stat import KsmStat
from ksm_exporter.sources.roots import Roots
from ksm_exporter.sources.sysfs import KsmSysfs

pytestmark = pytest.mark.unit

# 6.12's ksm_stat (no ksm_mergeable line) of a process ksmd has not visited: whether it is
# registered is told by its smaps' VmFlags.
UNVISITED = KsmStat(rmap_items=0, zero_pages=0, merging_pages=0, profit=0)
RUNNING = {"run": 1, "pages_to_scan": 100, "sleep_millisecs": 20, "smart_scan": 0}


def explainer(tmp_path: Path) -> Explainer:
    roots = Roots(str(tmp_path / "sys"), str(tmp_path / "proc"))
    (tmp_path / "proc").mkdir()
    return Explainer.for_host(roots, KsmSysfs(True, values=RUNNING), 4096)


def test_a_process_gone_before_its_smaps_is_read_is_said_to_have_exited(tmp_path: Path) -> None:
    """The scrape's path: the counters come from the sweep, the process exits after it."""
    explanation = explainer(tmp_path).explain(4321, UNVISITED)
    assert explanation.reason == "unknown"
    assert explanation.sentence == "process 4321 exited while it was explained"


def test_a_process_that_does_not_exist_is_said_to_have_exited(tmp_path: Path) -> None:
    explanation = explainer(tmp_path).explain(4321)
    assert explanation.sentence == "process 4321 exited while it was explained"


def test_the_host_files_a_cause_does_not_need_are_not_read(tmp_path: Path) -> None:
    why = explainer(tmp_path)
    why.host = type(why.host)(KsmSysfs(True, values={**RUNNING, "run": 0}), "ksm", 4096, ())
    process = tmp_path / "proc" / "77"
    process.mkdir()
    (process / "ksm_stat").write_text("ksm_rmap_items 0\nksm_merging_pages 0\n")
    explanation = why.explain(77)
    assert [check.reason for check in explanation.checks] == ["ksm_stopped"]
    assert (why.host.huge_pages, why.host.events) == (None, None)  # THP, vmstat: not read

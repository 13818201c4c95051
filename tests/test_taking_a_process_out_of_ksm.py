"""What the runbook tells an operator to check after taking a process out of KSM, on real
KSM: its merge_any and mergeable figures drop at once, its merged-page count only when ksmd
passes again, and then its series are gone."""

from __future__ import annotations

import pytest

from harness.eventually import eventually
from harness.exposition import parse_samples, render
from harness.real_ksm import ksm_control, merging_child
from ksm_exporter.collector.collection import KsmCollection
from ksm_exporter.reading.host_reader import HostReader
from ksm_exporter.reading.processes import ProcessOptions
from ksm_exporter.sources.roots import Roots

pytestmark = pytest.mark.realksm


def process_figures(collection: KsmCollection, pid: int) -> dict[str, float]:
    """{metric: value} of the pid's own series; empty when it has none."""
    return {
        name: value
        for (name, labels), value in parse_samples(render(collection)).items()
        if ("pid", str(pid)) in labels
    }


@pytest.mark.parametrize(("method", "merge_any"), [("madvise", 0.0), ("prctl", 1.0)])
def test_a_process_taken_out_of_ksm_loses_its_series(method: str, merge_any: float) -> None:
    collection = KsmCollection(
        HostReader(Roots("/sys", "/proc"), processes=ProcessOptions(limit=100_000))
    )
    with ksm_control() as ksm, merging_child(method=method) as child:
        ksm.set(pages_to_scan=1000, sleep_millisecs=10, run=1)
        child.wait_merged(1000)
        ksm.set(run=0)  # ksmd stops where it is: nothing updates the counts now
        merged = child.merging_pages()
        before = process_figures(collection, child.pid)
        assert before["ksm_process_merging_pages"] == merged
        assert before["ksm_process_merge_any"] == merge_any
        assert before["ksm_process_mergeable"] == 1.0

        child.unmerge()
        after = process_figures(collection, child.pid)
        assert after["ksm_process_merge_any"] == 0.0
        assert after["ksm_process_mergeable"] == 0.0
        assert after["ksm_process_merging_pages"] == merged

        ksm.set(run=1)
        eventually(
            lambda: not process_figures(collection, child.pid),
            60,
            interval=0.1,
            what="its series gone once ksmd ran",
        )
        assert child.merging_pages() == 0

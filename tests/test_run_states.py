"""What `run` says, by one rule: mm/ksm.c's KSM_RUN_MERGE (1), KSM_RUN_UNMERGE (2) and the
KSM_RUN_OFFLINE bit (4) that ksm_memory_callback() adds while memory goes offline."""

from __future__ import annotations

import pytest

from ksm_exporter.sources.ksm_files import ksmd_scanning, merging_on, run_setting

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("run", "setting", "on", "scanning"),
    [
        (0, 0, False, False),  # stopped: ksmd_should_run() is false
        (1, 1, True, True),
        (2, 2, False, False),  # unmerge_and_remove_all_rmap_items(), then ksmd idles
        (4, 0, False, False),  # stopped while memory goes offline
        (5, 1, True, False),  # set to merge, ksmd held in wait_while_offlining()
        (None, None, False, False),
    ],
)
def test_run_reads_as_the_kernel_means_it(
    run: int | None, setting: int | None, on: bool, scanning: bool
) -> None:
    if run is not None:
        assert run_setting(run) == setting
    assert merging_on(run) is on
    assert ksmd_scanning(run) is scanning

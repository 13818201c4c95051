"""Kernel lab: each lab kernel measured live; the exporter's scrape, taken in the same instant
as a read of every KSM file and ksm_stat, agrees with them series by series."""

from __future__ import annotations

import pytest

from lab.compare import checks, differences
from lab.measure import LAB_KERNELS, measure
from tests.support.lab_kernels import measured

pytestmark = pytest.mark.lab

EINVAL = 22


@pytest.mark.parametrize("kernel", LAB_KERNELS)
def test_the_exporter_agrees_with_the_kernel_files(kernel: str) -> None:
    capture = measured(measure, kernel)
    assert "same_instant" not in capture.notes
    found = checks(capture, capture.exposition)
    assert differences(found) == []
    # prctl(PR_SET_MEMORY_MERGE) registers where the kernel has it, else fails with EINVAL.
    prctl = capture.notes["prctl"]
    assert prctl == "ready" or prctl.endswith(f"errno {EINVAL}")
    registered = [pid for pid in capture.pids() if capture.registered(pid)]
    assert capture.roles["madvise"] in registered
    assert (capture.roles["prctl"] in registered) == (prctl == "ready")

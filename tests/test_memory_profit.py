"""ksm_memory_profit_bytes and the state it gives, on a kernel without general_profit (6.1).

The expected figures follow general_profit_show() in mm/ksm.c:
(ksm_pages_sharing + ksm_zero_pages) * PAGE_SIZE - ksm_rmap_items * sizeof(struct ksm_rmap_item),
with ksm_rmap_items = shared + sharing + unshared + volatile (pages_volatile_show()).
"""

from __future__ import annotations

import pytest

from ksm_exporter.derive.savings import memory_profit_bytes
from ksm_exporter.derive.scan_cost import ScanCost, advance
from ksm_exporter.derive.tuning import HostNow, TuningOptions, advise
from ksm_exporter.sources.host import ScanReading
from ksm_exporter.sources.sysfs import KsmSysfs

pytestmark = pytest.mark.unit

PAGE = 4096
# The example: 200,000 shared, 100,000 sharing, 6.8 M rmap items in all, 6.1's 14 files.
SIX_ONE = {
    "run": 1,
    "pages_to_scan": 100,
    "sleep_millisecs": 20,
    "pages_shared": 200_000,
    "pages_sharing": 100_000,
    "pages_unshared": 6_000_000,
    "pages_volatile": 500_000,
}


def test_the_sysfs_identity_gives_the_loss_the_per_process_sum_hides() -> None:
    ksm = KsmSysfs(True, values={**SIX_ONE, "full_scans": 1})
    assert memory_profit_bytes(ksm, PAGE) == 100_000 * PAGE - 6_800_000 * 64 == -25_600_000
    # The per-process formula summed: merging pages are shared + sharing (stable_tree_append()
    # counts every mapping), which would say +793.6 MB.
    assert (200_000 + 100_000) * PAGE - 6_800_000 * 64 == 793_600_000


def test_general_profit_is_the_kernel_s_own_where_it_exists() -> None:
    ksm = KsmSysfs(True, values={**SIX_ONE, "general_profit": 5, "ksm_zero_pages": 3})
    assert memory_profit_bytes(ksm, PAGE) == 5


def test_zero_pages_count_where_the_file_exists() -> None:
    ksm = KsmSysfs(True, values={**SIX_ONE, "ksm_zero_pages": 10_000})
    assert memory_profit_bytes(ksm, PAGE) == (100_000 + 10_000) * PAGE - 6_800_000 * 64


def test_unreadable_counter_gives_no_figure() -> None:
    ksm = KsmSysfs(True, unreadable=frozenset({"pages_volatile"}), values=SIX_ONE)
    assert memory_profit_bytes(ksm, PAGE) is None


def test_the_state_is_unprofitable_and_the_advice_unmerges() -> None:
    cost = ScanCost()
    for tick in range(12):
        ksm = KsmSysfs(True, values={**SIX_ONE, "full_scans": tick})
        reading = ScanReading(
            float(tick), tick, run=1, ksmd_pid=7, ksmd_cpu_ns=tick * 10**8, ksm=ksm, page_size=PAGE
        )
        cost = advance(cost, reading)
    host = HostNow(run=1, pages_to_scan=100, sleep_millisecs=20, registered=3)
    advice = advise(cost, host, TuningOptions())
    assert advice.state == "unprofitable"
    assert advice.recommended_run == 2  # run_store(): KSM_RUN_UNMERGE frees the rmap items

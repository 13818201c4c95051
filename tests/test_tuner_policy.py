"""The tuner's next change, from the advice and what it measured.

Expected settings come from ksmd's cost written out here: a full scan of N pages in batches
of p takes floor(N/p) + 1 wake-ups (ksm_do_scan() returns at the scan's end) and costs
N·c + wake-ups·b of CPU; each wake-up is followed by 20 ms, 5 jiffies at HZ=250, and the
timer wheel's one more, plus the whole jiffies its work spans.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from ksm_exporter.derive.tuner_policy import TunerInput, next_change
from ksm_exporter.derive.tuning import Advice, Model, TuningOptions

pytestmark = pytest.mark.unit

C, B, N, HZ = 0.5e-6, 30e-6, 32_768, 250
MODEL = Model(c=C, b=B, n=N, n_source="pages_scanned", settings_seen=2, sleep_millisecs=20, hz=HZ)
OPTIONS = TuningOptions(cpu_budget=0.1, steady_full_scan_seconds=200)


def share(p: int) -> float:
    batches = N // p + 1
    last = N - (batches - 1) * p

    def wall(pages: int) -> float:
        work_jiffies = (pages * C + B) * HZ
        return (5 + 1 + max(0.0, work_jiffies - 0.5)) / HZ

    return (N * C + batches * B) / ((batches - 1) * wall(p) + wall(last))


def largest_within(budget: float) -> int:
    return max(p for p in range(1, N + 1) if share(p) <= budget)


def advice(state: str = "steady", pages: int | None = 3, run: int = 1) -> Advice:
    return Advice(state, MODEL, run, 200.0, pages)  # type: ignore[arg-type]


def decide(
    now_pages: int,
    *,
    given: Advice | None = None,
    cpu: float | None = None,
    new_memory: bool = False,
    run: int = 1,
) -> TunerInput:
    return TunerInput(given or advice(), run, now_pages, cpu, new_memory)


def test_over_the_budget_lowers_at_once_to_the_largest_setting_within_it() -> None:
    change = next_change(decide(30_000, cpu=0.31, given=advice("backlog", 30_000)), OPTIONS)
    assert change is not None
    assert change.setting == "pages_to_scan"
    # Within the budget, with as many batches a scan as the fastest setting within it.
    assert share(change.value) <= 0.1
    assert math.ceil(N / change.value) == math.ceil(N / largest_within(0.1))
    assert "over the 10.0% budget" in change.reason


def test_raising_at_most_doubles_a_step() -> None:
    change = next_change(decide(100, cpu=0.001, given=advice("backlog", 5_000)), OPTIONS)
    assert change is not None
    assert change.value == 200
    assert "a step towards 5000" in change.reason


def test_lowering_to_the_steady_pace_is_not_held_back() -> None:
    change = next_change(decide(3_000, cpu=0.08, given=advice("steady", 3)), OPTIONS)
    assert change is not None
    assert change.value == 3


def test_new_memory_goes_towards_the_budget_pace_whatever_the_trend_says() -> None:
    change = next_change(decide(3, cpu=0.001, new_memory=True, given=advice("steady", 3)), OPTIONS)
    assert change is not None
    assert change.value == 6
    assert (change.rule, "new memory" in change.reason) == ("new_memory", True)


def test_without_a_model_the_pace_scales_with_the_measured_share() -> None:
    blind = Advice("backlog", None, 1)
    # 2% of a CPU at 100 pages: 500 fit a 10% budget; the step stops at 200.
    change = next_change(decide(100, cpu=0.02, new_memory=True, given=blind), OPTIONS)
    assert change is not None
    assert change.value == 200
    over = next_change(decide(1_000, cpu=0.4, given=blind), OPTIONS)
    assert over is not None
    assert over.value == 250


GIB = 2**30


def unprofitable(
    *, loss: int, total: int = 16 * GIB, short: bool = False, pages: int = 100, cpu: float = 0.001
) -> TunerInput:
    return TunerInput(
        advice("unprofitable", None, run=2),
        1,
        pages,
        cpu,
        new_memory=False,
        sleep_millisecs=20,
        short_of_memory=short,
        loss_bytes=loss,
        mem_total_bytes=total,
    )


def full_scan_seconds(p: int) -> float:
    """As share(): N/p batches of p pages and one of the rest, each 6 jiffies plus its work."""
    batches = N // p + 1
    last = N - (batches - 1) * p

    def wall(pages: int) -> float:
        return (5 + 1 + max(0.0, (pages * C + B) * HZ - 0.5)) / HZ

    return (batches - 1) * wall(p) + wall(last)


def test_unprofitable_slows_to_a_full_scan_every_three_steady_targets() -> None:
    options = TuningOptions(cpu_budget=0.1, steady_full_scan_seconds=20)
    change = next_change(unprofitable(loss=16 << 20, pages=1000), options)
    assert change is not None
    assert change.setting == "pages_to_scan"
    assert full_scan_seconds(change.value) == pytest.approx(60, rel=0.05)
    assert "net profit is at or below 0" in change.reason


def test_unmerging_only_where_it_frees_a_hundredth_of_memory_and_never_short_of_it() -> None:
    # 1 GiB of distinct pages on a 16 GiB host: 16 MiB of rmap items, 0.1%: slow, not unmerge.
    assert next_change(unprofitable(loss=16 << 20), OPTIONS).setting == "pages_to_scan"  # type: ignore[union-attr]
    change = next_change(unprofitable(loss=200 << 20), OPTIONS)
    assert change is not None
    assert (change.setting, change.value) == ("run", 2)
    assert "200 MiB" in change.reason
    # Short of memory: unmerge_ksm_pages() would re-inflate every merged page at once.
    short = next_change(unprofitable(loss=200 << 20, short=True), OPTIONS)
    assert short is None or short.setting == "pages_to_scan"


def test_new_memory_outranks_the_unprofitable_trend() -> None:
    now = replace(unprofitable(loss=200 << 20), new_memory=True)
    change = next_change(now, OPTIONS)
    assert change is not None
    assert change.setting == "pages_to_scan"
    assert change.value == 200
    assert "new memory" in change.reason


def test_a_way_back_from_the_tuners_own_unmerge() -> None:
    unmerged = TunerInput(Advice("stopped", MODEL, 1), 2, 100, 0.0, False, 20, run_is_ours=True)
    assert next_change(unmerged, OPTIONS) is None  # nothing new, no probe due: it stays
    for why, now in [
        ("mergeable memory appeared", replace(unmerged, new_memory=True)),
        ("a probe", replace(unmerged, probe_due=True)),
    ]:
        change = next_change(now, OPTIONS)
        assert change is not None
        assert (change.setting, change.value) == ("run", 1)
        assert why in change.reason
    # An operator's run=2 or run=0 stays theirs, whatever appears.
    for run in (0, 2):
        theirs = replace(unmerged, run=run, run_is_ours=False, new_memory=True, probe_due=True)
        assert next_change(theirs, OPTIONS) is None


def test_memory_going_offline_is_the_kernels_and_left_alone() -> None:
    # run 5: KSM_RUN_MERGE | KSM_RUN_OFFLINE, set by ksm_memory_callback().
    assert next_change(decide(100, cpu=0.5, run=5, given=advice("backlog", 900)), OPTIONS) is None


def test_sleep_0_is_not_driven_to_one_page() -> None:
    now = replace(decide(1000, cpu=0.9, given=advice("backlog", 900)), sleep_millisecs=0)
    assert next_change(now, OPTIONS) is None


def test_short_of_memory_the_second_budget_applies() -> None:
    options = TuningOptions(cpu_budget=0.1, pressure_cpu_budget=0.25)
    at_ease = next_change(decide(20_000, cpu=0.2, given=advice("backlog", 20_000)), options)
    assert at_ease is not None
    assert share(at_ease.value) <= 0.1
    short = replace(decide(20_000, cpu=0.2, given=advice("backlog", 20_000)), short_of_memory=True)
    assert next_change(short, options) is None  # 20% is within 25%


def test_a_measured_share_over_the_models_lowers_past_the_model() -> None:
    # The model allows the fastest pace within 10%; ksmd measured 4 times what it predicts
    # (distinct pages cost more than those it was fitted on): the measured share decides.
    fitted = largest_within(0.1)
    measured = 4 * share(fitted)
    change = next_change(decide(fitted, cpu=measured, given=advice("backlog", fitted)), OPTIONS)
    assert change is not None
    assert change.value == math.floor(fitted * 0.1 / measured)


@pytest.mark.parametrize("run", [0, 2])
def test_never_starts_or_steers_ksm_that_is_not_running(run: int) -> None:
    assert next_change(decide(100, cpu=0.5, run=run, given=advice("backlog", 900)), OPTIONS) is None


def test_no_advice_yet_changes_nothing() -> None:
    assert next_change(decide(100, cpu=0.01, given=Advice(None, None)), OPTIONS) is None


def test_the_advice_already_set_changes_nothing() -> None:
    assert next_change(decide(3, cpu=0.003, given=advice("steady", 3)), OPTIONS) is None

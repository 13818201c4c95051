"""The tuner's next change, from the advice and what it measured.

Expected settings come from ksmd's cost written out here: a full scan of N pages in batches
of p takes floor(N/p) + 1 wake-ups (ksm_do_scan() returns at the scan's end) and costs
N·c + wake-ups·b of CPU; each wake-up is followed by 20 ms, 5 jiffies at HZ=250, and the
timer wheel's one more, plus the whole jiffies its work spans.
"""

from __future__ import annotations

import math

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
    change = next_change(decide(100, cpu=0.01, given=advice("backlog", 5_000)), OPTIONS)
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
    assert "new memory" in change.reason


def test_without_a_model_the_pace_scales_with_the_measured_share() -> None:
    blind = Advice("backlog", None, 1)
    # 2% of a CPU at 100 pages: 500 fit a 10% budget; the step stops at 200.
    change = next_change(decide(100, cpu=0.02, new_memory=True, given=blind), OPTIONS)
    assert change is not None
    assert change.value == 200
    over = next_change(decide(1_000, cpu=0.4, given=blind), OPTIONS)
    assert over is not None
    assert over.value == 250


def test_unprofitable_advice_unmerges() -> None:
    change = next_change(decide(100, given=advice("unprofitable", None, run=2)), OPTIONS)
    assert change is not None
    assert (change.setting, change.value) == ("run", 2)


@pytest.mark.parametrize("run", [0, 2, 5])
def test_never_starts_or_steers_ksm_that_is_not_running(run: int) -> None:
    assert next_change(decide(100, cpu=0.5, run=run, given=advice("backlog", 900)), OPTIONS) is None


def test_no_advice_yet_changes_nothing() -> None:
    assert next_change(decide(100, cpu=0.01, given=Advice(None, None)), OPTIONS) is None


def test_the_advice_already_set_changes_nothing() -> None:
    assert next_change(decide(3, cpu=0.003, given=advice("steady", 3)), OPTIONS) is None

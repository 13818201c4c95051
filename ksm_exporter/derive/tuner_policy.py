"""What `ksm-exporter tune` changes next: the advice applied in bounded steps.

The tuner acts on the same advice the exporter serves (derive/tuning.py), with three rules
of its own, in this order:

1. Over the budget: once the cost is known (a fitted model, or the measured CPU share at
   the current setting), a measured share above the budget lowers pages_to_scan at once to
   the setting the budget allows. Lowering is never held back: it only makes ksmd cheaper.
2. New memory: when memory to scan appears (a process registers, the rmap items jump), the
   host is taken to be in backlog at once, before the trend over three full scans can say
   so: the pace is the fastest the budget allows, as for a backlog.
3. Otherwise the advice's pages_to_scan.

Raising is gradual, as the kernel's documentation advises for pages_to_scan: at most
`MAX_STEP` times the current setting per step, so the CPU share measured at each setting
checks the model before the next one. The advice's run (2: unmerge, where KSM costs more
than it saves) is applied as it stands.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ksm_exporter.derive.tuning import Advice, Prediction, TuningOptions, within_budget
from ksm_exporter.sources.ksm_files import RUN_RUNNING, ksmd_scanning

MAX_STEP = 2  # a step at most doubles pages_to_scan
# Share of the budget a measured CPU share may exceed it by before the tuner acts: ksmd's
# CPU over a few seconds wobbles by a few percent at a steady setting.
BUDGET_SLACK = 1.05
# The advice moves by a page or two as each scan refines the model: a setting this close to
# it gives the same full-scan time within the noise, and is left alone.
CLOSE_ENOUGH = 0.1

Setting = Literal["pages_to_scan", "run"]


@dataclass(frozen=True, slots=True)
class TunerInput:
    """What the tuner knows at one decision."""

    advice: Advice
    run: int | None
    pages_to_scan: int | None
    cpu_ratio: float | None  # ksmd's measured share of one CPU at the current setting
    new_memory: bool  # memory to scan appeared since the backlog pace was last set


@dataclass(frozen=True, slots=True)
class Change:
    setting: Setting
    value: int
    reason: str
    predicted: Prediction | None = None


def next_change(now: TunerInput, options: TuningOptions) -> Change | None:
    """The one change to make now, None to leave the settings as they are."""
    advice = now.advice
    if not ksmd_scanning(now.run) or not now.pages_to_scan:
        return None  # stopped, unmerging or paused: the tuner never starts KSM
    if advice.recommended_run is not None and advice.recommended_run not in (RUN_RUNNING, now.run):
        return Change(
            "run",
            advice.recommended_run,
            f"KSM's net profit is at or below 0 ({advice.state}): "
            "unmerging frees the metadata it costs",
        )
    current = now.pages_to_scan
    budget_pages = pages_within_budget(now, options)
    over = now.cpu_ratio is not None and now.cpu_ratio > options.cpu_budget * BUDGET_SLACK
    if over and budget_pages is not None and budget_pages < current:
        reason = f"ksmd used {now.cpu_ratio:.1%} of a CPU, over the {options.cpu_budget:.1%} budget"
        return change_to(budget_pages, now, reason)
    aim = pace_target(now, budget_pages)
    if aim is None:
        return None
    target, reason = aim
    stepped = bounded(current, target)
    if stepped == current:
        return None
    if stepped != target:
        reason += f" (a step towards {target})"
    return change_to(stepped, now, reason)


def pace_target(now: TunerInput, budget_pages: int | None) -> tuple[int, str] | None:
    """The pages_to_scan to head for, and why; None where the current one will do."""
    advice = now.advice
    if now.new_memory and budget_pages is not None:
        return budget_pages, "new memory to scan: as fast as the budget allows until it is merged"
    target = advice.pages_to_scan
    current = now.pages_to_scan or 0
    if target is None or abs(target - current) <= CLOSE_ENOUGH * current:
        return None
    return target, advice_reason(advice)


def pages_within_budget(now: TunerInput, options: TuningOptions) -> int | None:
    """The largest pages_to_scan within the budget: from the model where it is fitted, else
    scaled from the CPU share measured at the current setting (ksmd's CPU grows about in
    proportion to pages_to_scan while the sleep dominates a batch)."""
    model = now.advice.model
    if model is not None:
        return within_budget(model, options.cpu_budget)
    if now.cpu_ratio is None or not now.pages_to_scan:
        return None
    if now.cpu_ratio <= 0:
        return now.pages_to_scan * MAX_STEP
    return max(1, math.floor(now.pages_to_scan * options.cpu_budget / now.cpu_ratio))


def bounded(current: int, target: int) -> int:
    """Raising at most MAX_STEP-fold a step; lowering at once."""
    return max(1, min(target, current * MAX_STEP))


def change_to(pages: int, now: TunerInput, reason: str) -> Change:
    model = now.advice.model
    return Change("pages_to_scan", pages, reason, None if model is None else model.predict(pages))


def advice_reason(advice: Advice) -> str:
    if advice.state == "backlog":
        return "saved memory still grows: as fast as the budget allows"
    if advice.state == "steady" and advice.target_full_scan_seconds is not None:
        return f"saved memory is steady: a full scan every {advice.target_full_scan_seconds:.0f} s"
    return f"the advice for a {advice.state} host"

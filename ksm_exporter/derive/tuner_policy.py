"""What `ksm-exporter tune` changes next: the advice applied in bounded steps, with a way
back from every decision.

The tuner acts on the same advice the exporter serves (derive/tuning.py), with rules of its
own, in this order:

0. The kernel's and the operator's states are left alone: `run` with KSM_RUN_OFFLINE set
   (ksm_memory_callback() while memory goes offline), a `run` other than 1 the tuner did not
   write, and `sleep_millisecs` 0 (ksmd never sleeps: pages_to_scan sets no pace).
1. A way back: where the tuner itself unmerged (run=2), it writes run=1 again as soon as
   mergeable memory appears (a process registers, registered memory grows) or, where nothing
   says so, every `probe_seconds`: one probe costs at most the budget for the few full scans
   the trend needs, and is logged and recorded as a change.
2. Over the budget: a CPU share measured over the recent window above the budget lowers
   pages_to_scan at once, to the lesser of what the model and the measured share allow (a
   model fitted on memory that merges underrates distinct pages, which cost more).
   Lowering is never held back: it only makes ksmd cheaper.
3. New memory: when memory to scan appears (a process registers, registered memory grows,
   pages merge between two decisions), the pace is the fastest the budget allows, before the
   trend over full scans can say so.
4. Unprofitable (KSM's net profit at or below 0): the slowest pace that still notices new
   duplicates, a full scan every UNPROFITABLE_SCAN_FACTOR steady targets; unmerging (run=2)
   only where it pays, the metadata it frees being at least UNMERGE_SHARE of the host's
   memory, and never while the host is short of memory (unmerge_ksm_pages() breaks every
   COW at once: the kernel's documentation warns it may need more memory than there is).
5. Otherwise the advice's pages_to_scan.

Raising is gradual, as the kernel's documentation advises for pages_to_scan: at most
`MAX_STEP` times the current setting per step (NEW_MEMORY_STEP for new memory), and never
past what the CPU share measured at the current setting allows, so each setting checks the
model before the next one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ksm_exporter.derive.tuning import Advice, Prediction, TuningOptions, within_budget
from ksm_exporter.sources.ksm_files import RUN_OFFLINE, RUN_RUNNING, RUN_UNMERGE

MAX_STEP = 2  # a step at most doubles pages_to_scan
# New memory waits for no trend, but its steps are no larger: a step that overshoots by no
# more than twice, undone within 2 s by the tuner's guard (tune/tuner.py), keeps a 10 s
# window within 1.25 times the budget.
NEW_MEMORY_STEP = 2
# Share of the budget a measured CPU share may exceed it by before the tuner acts: ksmd's
# CPU over a few seconds wobbles by a few percent at a steady setting.
BUDGET_SLACK = 1.05
# The advice moves by a page or two as each scan refines the model: a setting this close to
# it gives the same full-scan time within the noise, and is left alone.
CLOSE_ENOUGH = 0.1
# Unprofitable: a full scan every this many steady targets (600 s at the default 200 s).
# smart_scan skips the pages that never merge besides, so the pace costs little.
UNPROFITABLE_SCAN_FACTOR = 3
# Unmerging pays where the rmap items it frees beyond the pages it re-inflates are at least
# this share of MemTotal: 64 bytes a page, about 1.6% of the distinct memory registered.
UNMERGE_SHARE = 0.01

Setting = Literal["pages_to_scan", "run"]
# Which rule made a change: a bounded set, the label of the exporter's ksm_tuner_* series.
Rule = Literal[
    "over_budget", "new_memory", "unprofitable", "unmerge", "way_back", "probe", "advice"
]
RULES: tuple[Rule, ...] = (
    "over_budget",
    "new_memory",
    "unprofitable",
    "unmerge",
    "way_back",
    "probe",
    "advice",
)
Aim = tuple[int, str, Rule]  # the pages_to_scan to head for, why, by which rule


@dataclass(frozen=True, slots=True)
class TunerInput:
    """What the tuner knows at one decision."""

    advice: Advice
    run: int | None
    pages_to_scan: int | None
    cpu_ratio: float | None  # ksmd's share of one CPU over the recent window at this setting
    new_memory: bool  # memory to scan appeared since the backlog pace was last set
    sleep_millisecs: int | None = None
    run_is_ours: bool = False  # the current run was written by this tuner (its state file)
    probe_due: bool = False  # unmerged by the tuner for probe_seconds: time to look again
    short_of_memory: bool = False  # derive/memory_pressure.py
    loss_bytes: int | None = None  # what KSM's metadata costs beyond what it saves, >= 0
    mem_total_bytes: int | None = None
    ceiling: int | None = None  # a raise undone lately: no higher for a while (tune/tuner.py)


@dataclass(frozen=True, slots=True)
class Change:
    setting: Setting
    value: int
    reason: str
    predicted: Prediction | None = None
    rule: Rule = "advice"


def next_change(now: TunerInput, options: TuningOptions) -> Change | None:
    """The one change to make now, None to leave the settings as they are."""
    if now.run is None or now.run & RUN_OFFLINE:
        return None  # the kernel takes memory offline (ksm_memory_callback()): it is its own
    if now.run != RUN_RUNNING:
        return way_back(now)
    if not now.pages_to_scan or now.sleep_millisecs == 0:
        return None  # ksmd never sleeps: no pace to set with pages_to_scan
    return steer(now, now.pages_to_scan, options)


def steer(now: TunerInput, current: int, options: TuningOptions) -> Change | None:
    """The change to pages_to_scan, or to run=2, while KSM runs."""
    budget = options.budget(now.short_of_memory)
    budget_pages = pages_within_budget(now, budget)
    over = now.cpu_ratio is not None and now.cpu_ratio > budget * BUDGET_SLACK
    if over and budget_pages is not None and budget_pages < current:
        reason = f"ksmd used {now.cpu_ratio:.1%} of a CPU, over the {budget:.1%} budget"
        return change_to(budget_pages, now, reason, "over_budget")
    if not now.new_memory and now.advice.state == "unprofitable":
        if unmerge_pays(now):
            return Change("run", RUN_UNMERGE, unmerge_reason(now, options), rule="unmerge")
        aim = unprofitable_pace(now, options, budget_pages)
    else:
        aim = pace_target(now, budget_pages, budget)
    if aim is None:
        return None
    target, reason, rule = aim
    stepped = bounded(current, target, NEW_MEMORY_STEP if rule == "new_memory" else MAX_STEP)
    if stepped == current:
        return None
    if stepped != target:
        reason += f" (a step towards {target})"
    return change_to(stepped, now, reason, rule)


def way_back(now: TunerInput) -> Change | None:
    """run=1 again where this tuner unmerged and mergeable memory may be there: a `run` an
    operator wrote (0 or 2) stays theirs, and the tuner never starts KSM they stopped."""
    if not now.run_is_ours or now.run != RUN_UNMERGE:
        return None
    if now.new_memory:
        reason = "mergeable memory appeared: KSM scans it again"
        return Change("run", RUN_RUNNING, reason, rule="way_back")
    if now.probe_due:
        return Change(
            "run",
            RUN_RUNNING,
            "a probe: unmerged for a while with nothing new seen, KSM looks once more "
            "for a few full scans within the budget",
            rule="probe",
        )
    return None


def unmerge_pays(now: TunerInput) -> bool:
    if now.short_of_memory or not now.loss_bytes or not now.mem_total_bytes:
        return False
    return now.loss_bytes >= UNMERGE_SHARE * now.mem_total_bytes


def unmerge_reason(now: TunerInput, options: TuningOptions) -> str:
    assert now.loss_bytes is not None
    return (
        f"KSM's metadata costs {now.loss_bytes / 2**20:.0f} MiB more than it saves: unmerging "
        f"frees it; KSM scans again once memory registers or grows, else in "
        f"{options.probe_seconds:.0f} s"
    )


def unprofitable_pace(
    now: TunerInput, options: TuningOptions, budget_pages: int | None
) -> Aim | None:
    """The slowest pace that still notices new duplicates: a full scan every few steady
    targets, within the budget."""
    model = now.advice.model
    if model is None:
        return None
    seconds = UNPROFITABLE_SCAN_FACTOR * options.steady_full_scan_seconds
    target = model.pages_for_time(seconds)
    if budget_pages is not None:
        target = min(target, budget_pages)
    current = now.pages_to_scan or 0
    if abs(target - current) <= CLOSE_ENOUGH * current:
        return None
    reason = (
        f"KSM's net profit is at or below 0: a full scan every {seconds:.0f} s notices new "
        "duplicates at little cost"
    )
    return target, reason, "unprofitable"


def pace_target(now: TunerInput, budget_pages: int | None, budget: float) -> Aim | None:
    """The pages_to_scan to head for, and why; None where the current one will do."""
    advice = now.advice
    if now.new_memory and budget_pages is not None:
        reason = f"new memory to scan: as fast as the {budget:.1%} budget allows until it is merged"
        return budget_pages, reason, "new_memory"
    target = advice.pages_to_scan
    current = now.pages_to_scan or 0
    if target is None or abs(target - current) <= CLOSE_ENOUGH * current:
        return None
    if budget_pages is not None:
        target = min(target, budget_pages)
    return target, advice_reason(advice), "advice"


def pages_within_budget(now: TunerInput, budget: float) -> int | None:
    """The largest pages_to_scan within the budget: the lesser of the model's (where fitted)
    and the one scaled from the CPU share measured over the recent window (ksmd's CPU grows
    about in proportion to pages_to_scan while the sleep dominates a batch). The measured
    share is the cost of the memory the host has now, whatever the model was fitted on.
    Never above a ceiling the tuner set after undoing a raise."""
    model = now.advice.model
    limits = [] if model is None else [within_budget(model, budget)]
    if now.cpu_ratio is not None and now.pages_to_scan:
        if now.cpu_ratio <= 0:
            limits.append(now.pages_to_scan * NEW_MEMORY_STEP)
        else:
            limits.append(max(1, math.floor(now.pages_to_scan * budget / now.cpu_ratio)))
    if not limits:
        return None
    if now.ceiling is not None:
        limits.append(now.ceiling)
    return min(limits)


def bounded(current: int, target: int, step: int = MAX_STEP) -> int:
    """Raising at most `step`-fold a step; lowering at once."""
    return max(1, min(target, current * step))


def change_to(pages: int, now: TunerInput, reason: str, rule: Rule) -> Change:
    model = now.advice.model
    predicted = None if model is None else model.predict(pages)
    return Change("pages_to_scan", pages, reason, predicted, rule)


def advice_reason(advice: Advice) -> str:
    if advice.state == "backlog":
        return "saved memory still grows: as fast as the budget allows"
    if advice.state == "steady" and advice.target_full_scan_seconds is not None:
        return f"saved memory is steady: a full scan every {advice.target_full_scan_seconds:.0f} s"
    return f"the advice for a {advice.state} host"

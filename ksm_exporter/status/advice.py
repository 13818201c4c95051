"""The "Advice" block of `status`: the state, the measured cost, what to set and what it
will do, beside what ksmtuned, oVirt MOM, KubeVirt and the kernel's advisor would set."""

from __future__ import annotations

import math
import os
from typing import Any

from ksm_exporter.derive.other_tuners import RIVALS, AdvisorChoice, TunerChoice
from ksm_exporter.derive.tuning import Advice, Model, Prediction
from ksm_exporter.sources.ksm_files import RUN_UNMERGE
from ksm_exporter.status.snapshot import Snapshot, Tuning

STATE_SENTENCES = {
    "stopped": "KSM is not running: nothing to measure",
    "idle": "no process is registered with KSM",
    "unprofitable": "KSM costs more memory than it saves: unmerge (run=2) frees its "
    "metadata, stopping (run=0) frees nothing",
    "backlog": "saved memory still grows: as fast as the budget allows",
    "steady": "saved memory stopped growing: the steady pace",
}


# Why the advice caps the advisor's pages: scan_time_advisor() never goes below 10% of a CPU.
ADVISOR_WHY = [
    "               (under the kernel's advisor only its page cap binds: it",
    "               holds ksmd at 10% of a CPU or more, whatever advisor_max_cpu",
    "               says; or echo none > advisor_mode and set pages_to_scan)",
]


def commands(tuning: Tuning, ksm_advisor_active: bool) -> list[str]:
    """The exact lines to run as root, empty when there is nothing to change."""
    advice = tuning.advice
    where = tuning.ksm_dir
    if advice.recommended_run == RUN_UNMERGE:  # unmerge_and_remove_all_rmap_items()
        return [f"echo {RUN_UNMERGE} > {os.path.join(where, 'run')}"]
    if advice.pages_to_scan is None or advice.target_full_scan_seconds is None:
        return []
    if ksm_advisor_active:
        # Writing pages_to_scan returns EINVAL while the advisor runs, and its fixed floor of
        # 10% of a CPU overrides advisor_max_cpu: its cap on pages, applied last, binds.
        pages = os.path.join(where, "advisor_max_pages_to_scan")
        return [f"echo {advice.pages_to_scan} > {pages}"]
    return [f"echo {advice.pages_to_scan} > {os.path.join(where, 'pages_to_scan')}"]


def advisor_active(snapshot: Snapshot) -> bool:
    mode = snapshot.ksm.advisor_mode
    return mode is not None and mode.scan_time


def prediction(p: Prediction | None) -> str:
    if p is None:
        return "unknown"
    return f"{seconds(p.full_scan_seconds)} a full scan, {100 * p.cpu_ratio:.3g}% of a CPU"


def seconds(value: float) -> str:
    return f"{value:,.2f} s" if value < 100 else f"{value:,.0f} s"


def micro(value: float) -> str:
    return f"{value * 1e6:.3f} µs"


def needs_more(snapshot: Snapshot, advice: Advice) -> list[str]:
    """How many more full scans the advice needs, and how to see them."""
    scans = advice.scans_needed
    lines = [f"unknown until {scans} more full scan{'s' if scans != 1 else ''} complete"]
    last = snapshot.window.cost.full_scan_seconds
    wanted = None if last is None else math.ceil(snapshot.window.seconds + (scans + 1) * last)
    if wanted is not None and wanted <= 60:
        lines.append(f"watch longer: --window {wanted}")
    else:
        lines.append("watch longer (--window, at most 60 s), or read the exporter's")
        lines.append("ksm_tuning_* metrics: it watches all the time")
    return lines


def advice_lines(snapshot: Snapshot) -> list[str]:
    tuning = snapshot.tuning
    if tuning is None:
        return []
    advice = tuning.advice
    budget = tuning.options.cpu_budget
    lines = []
    if advice.state is None:
        first, *rest = needs_more(snapshot, advice)
        lines.append(f"Advice         {first}")
        lines.extend(f"{'':15}{line}" for line in rest)
    else:
        lines.append(f"Advice         {advice.state}: {STATE_SENTENCES[advice.state]}")
    model = advice.model
    if model is None and advice.state not in (None, "stopped", "idle"):
        first, *rest = needs_more(snapshot, advice)
        lines.append(f"Measured cost  {first.replace('unknown', 'unknown:', 1)}")
        lines.extend(f"{'':15}{line}" for line in rest)
    if model is not None:
        estimated = " (estimated from rmap items)" if model.n_source == "rmap_items" else ""
        if model.settings_seen > 1:
            lines.append(
                f"Measured cost  {micro(model.c)} of ksmd CPU a page, {micro(model.b)} a batch"
            )
        else:
            lines.append(f"Measured cost  {micro(model.c)} of ksmd CPU a page")
            lines.append(f"{'':15}(per batch: needs a pages_to_scan 2x apart; CPU overstated)")
        lines.append(f"               {model.n:,.0f} pages a full scan{estimated}")
        lines.extend(model_lines(model, advice))
    if advice.current is not None:
        lines.append(f"Now            {prediction(advice.current)}")
    todo = commands(tuning, advisor_active(snapshot))
    if advice.recommended is not None and advice.target_full_scan_seconds is not None:
        lines.append(
            f"Recommended    full scan in {seconds(advice.target_full_scan_seconds)}, "
            f"within {100 * budget:g}% of a CPU (--tuning.cpu-budget)"
        )
        lines.append(f"Then           {prediction(advice.recommended)}")
        lines.extend(ADVISOR_WHY if advisor_active(snapshot) else [])
        if advice.pages_to_scan == 1 and advice.recommended.full_scan_seconds < (
            0.95 * advice.target_full_scan_seconds
        ):
            lines.append("               (the slowest pages_to_scan; slower needs a longer sleep)")
    if todo:
        lines.append("Run as root:")
        lines.extend(f"  {line}" for line in todo)
    elif (
        advice.state in ("backlog", "steady") and advice.pages_to_scan == snapshot.ksm.pages_to_scan
    ):
        lines.append("               the current setting is the recommended one")
    lines.extend(other_lines(tuning))
    return lines


def choice_lines(name: str, choice: TunerChoice) -> list[str]:
    label = f"{name:<14} "
    if choice.run is None:
        return [f"{label}{choice.reason}"]
    if choice.run == 0:
        return [f"{label}would set run=0"]
    what = f"pages_to_scan={choice.pages_to_scan}, sleep_millisecs={choice.sleep_millisecs}"
    lines = [f"{label}would set {what}"]
    if choice.predicted is not None:
        lines.append(f"               then {prediction(choice.predicted)}")
    return lines


def model_lines(model: Model, advice: Advice) -> list[str]:
    """How the model times a batch (whole jiffies, the wait for a CPU, smart_scan's cycle),
    how it compares with the scans it was fitted to, and why it predicts nothing where it
    does not hold."""
    not_holding, check = advice.not_holding, advice.check
    assumed = ", assumed" if model.hz_source == "assumed" else ""
    lines = [
        f"{'':15}sleep {model.sleep_millisecs} ms = {model.sleep_jiffies} "
        f"jiff{'y' if model.sleep_jiffies == 1 else 'ies'} at HZ {model.hz}{assumed}, "
        "+1 for the timer",
    ]
    if model.run_delay + model.off_cpu >= 0.05:
        lines.append(
            f"{'':15}for each second on a CPU ksmd waited {model.run_delay:.2g} s for one "
            f"and {model.off_cpu:.2g} s"
        )
        lines.append(f"{'':15}off it: the load lengthens its scans, and the figures move with it")
    if model.skipped:
        lines.append(
            f"{'':15}smart_scan skipped {model.skipped:,.0f} pages a scan: figures over "
            f"{model.scans} scans"
        )
    if check is not None and not_holding is None:
        lines.append(
            f"{'':15}at {check.pages_to_scan} pages {seconds(check.predicted_seconds)} a "
            f"full scan modelled, {seconds(check.measured_seconds)} seen"
        )
    if not_holding is not None:
        lines.append("Predictions    none: the model does not hold here:")
        lines.extend(f"{'':15}{line}" for line in wrap(not_holding, 64))
    return lines


def wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def other_lines(tuning: Tuning) -> list[str]:
    lines = []
    for rival in RIVALS:
        lines.extend(choice_lines(rival.name, tuning.others[rival.key]))
    advisor = tuning.kernel_advisor
    if advisor is not None:
        lines.append(
            f"Kernel advisor would settle at pages_to_scan={advisor.pages_to_scan} "
            f"(target {advisor.target_scan_time} s, max {advisor.max_cpu_percent}%)"
        )
        lines.append(f"               then {prediction(advisor.predicted)}")
        if advisor.floor_binds:
            lines.append("               (held there by its fixed floor of 10% of a CPU)")
    return lines


def prediction_json(p: Prediction | None) -> dict[str, float] | None:
    if p is None:
        return None
    return {"full_scan_seconds": p.full_scan_seconds, "ksmd_cpu_ratio": p.cpu_ratio}


def choice_json(choice: TunerChoice, interval_seconds: int) -> dict[str, Any]:
    return {
        "interval_seconds": interval_seconds,
        "run": choice.run,
        "pages_to_scan": choice.pages_to_scan,
        "sleep_millisecs": choice.sleep_millisecs,
        "reason": choice.reason,
        "unknown": list(choice.unknown),
        "committed_bytes": choice.committed_bytes,
        "threshold_bytes": choice.threshold_bytes,
        "predicted": prediction_json(choice.predicted),
    }


def advisor_json(choice: AdvisorChoice | None) -> dict[str, Any] | None:
    if choice is None:
        return None
    return {
        "advisor_target_scan_time": choice.target_scan_time,
        "advisor_max_cpu": choice.max_cpu_percent,
        "pages_to_scan": choice.pages_to_scan,
        "cpu_floor_binds": choice.floor_binds,
        "predicted": prediction_json(choice.predicted),
    }


def advice_json(snapshot: Snapshot) -> dict[str, Any] | None:
    tuning = snapshot.tuning
    if tuning is None:
        return None
    advice, model = tuning.advice, tuning.advice.model
    return {
        "state": advice.state,
        "full_scans_needed": advice.scans_needed,
        "cpu_budget_ratio": tuning.options.cpu_budget,
        "steady_full_scan_seconds": tuning.options.steady_full_scan_seconds,
        "model": None
        if model is None
        else {
            "ksmd_cpu_seconds_per_page": model.c,
            "ksmd_cpu_seconds_per_batch": model.b,
            "sleep_seconds_per_batch": model.s,
            "pages_per_full_scan": model.n,
            "pages_per_full_scan_from": model.n_source,
            "pages_to_scan_values_seen": model.settings_seen,
            "hz": model.hz,
            "hz_source": model.hz_source,
            "sleep_jiffies": model.sleep_jiffies,
            "run_delay_seconds_per_cpu_second": model.run_delay,
            "off_cpu_seconds_per_cpu_second": model.off_cpu,
            "pages_skipped_per_full_scan": model.skipped,
            "full_scans_behind": model.scans,
        },
        "check": None
        if advice.check is None
        else {
            "pages_to_scan": advice.check.pages_to_scan,
            "full_scans": advice.check.scans,
            "measured_full_scan_seconds": advice.check.measured_seconds,
            "predicted_full_scan_seconds": advice.check.predicted_seconds,
        },
        "not_holding": advice.not_holding,
        "recommended": {
            "run": advice.recommended_run,
            "full_scan_seconds": advice.target_full_scan_seconds,
            "pages_to_scan": advice.pages_to_scan,
            "commands": commands(tuning, advisor_active(snapshot)),
        },
        "predicted": {
            "current": prediction_json(advice.current),
            "recommended": prediction_json(advice.recommended),
        },
        "others": {
            **{
                rival.key: choice_json(tuning.others[rival.key], rival.interval_seconds)
                for rival in RIVALS
            },
            "kernel_advisor": advisor_json(tuning.kernel_advisor),
        },
    }

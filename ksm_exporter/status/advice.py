"""The "Advice" section of the status model: the state, the measured cost, what to set and
what it will do; beside it the tuners that run here (ksmtuned, oVirt MOM, KubeVirt's handler,
the kernel's advisor), each with its rule as the cause of what it sets; and its JSON figures.
`advice.others` has the kernel advisor's settling point whether or not it runs (it predicts
what switching it on would do), and an entry for each other tuner only where it runs."""

from __future__ import annotations

import math
import os
from typing import Any

from ksm_exporter.derive.other_tuners import RIVALS, AdvisorChoice, TunerChoice
from ksm_exporter.derive.tuning import Advice, Prediction
from ksm_exporter.sources.ksm_files import RUN_UNMERGE
from ksm_exporter.status.formats import micro, prediction, seconds
from ksm_exporter.status.model import Row, Section, View
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
ADVISOR_WHY = (
    "(under the kernel's advisor only its page cap binds: it holds ksmd at 10% of a CPU or "
    "more, whatever advisor_max_cpu says; or echo none > advisor_mode and set pages_to_scan)"
)


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


def needs_more(snapshot: Snapshot, advice: Advice, view: View) -> tuple[str, tuple[str, ...]]:
    """How many more full scans the advice needs and, for `status`, how to see them."""
    scans = advice.scans_needed
    first = f"unknown until {scans} more full scan{'s' if scans != 1 else ''} complete"
    if view is not View.COMMAND:  # the server watches all the time
        return first, ()
    last = snapshot.window.cost.full_scan_seconds
    wanted = None if last is None else math.ceil(snapshot.window.seconds + (scans + 1) * last)
    if wanted is not None and wanted <= 60:
        return first, (f"watch longer: --window {wanted}",)
    return first, (
        "watch longer (--window, at most 60 s), or read the exporter's ksm_tuning_* metrics: "
        "it watches all the time",
    )


def advice_section(snapshot: Snapshot, view: View) -> Section:
    """The state, the measured cost, what to set and what it will do, then the tuners that
    run here."""
    tuning = snapshot.tuning
    if tuning is None:
        return Section("advice", "Advice", (), {"advice": None}, wide=True)
    rows = [
        state_row(snapshot, tuning.advice, view),
        *model_rows(snapshot, tuning.advice, view),
        *recommendation_rows(snapshot, tuning),
        *other_rows(tuning, advisor_active(snapshot)),
    ]
    return Section("advice", "Advice", tuple(rows), {"advice": advice_json(snapshot)}, wide=True)


def state_row(snapshot: Snapshot, advice: Advice, view: View) -> Row:
    figures = {"advice.state": advice.state, "advice.full_scans_needed": advice.scans_needed}
    if advice.state is None:
        first, hints = needs_more(snapshot, advice, view)
        return Row("Advice", first, hints, figures=figures)
    return Row("Advice", f"{advice.state}: {STATE_SENTENCES[advice.state]}", figures=figures)


def model_rows(snapshot: Snapshot, advice: Advice, view: View) -> list[Row]:
    """ksmd's measured cost, how the model times a batch (whole jiffies, the wait for a CPU,
    smart_scan's cycle), how it compares with the scans it was fitted to, and why it predicts
    nothing where it does not hold."""
    model = advice.model
    if model is None:
        if advice.state in (None, "stopped", "idle"):
            return []
        first, hints = needs_more(snapshot, advice, view)
        return [Row("Measured cost", first.replace("unknown", "unknown:", 1), hints)]
    notes = []
    if model.settings_seen > 1:
        cost = f"{micro(model.c)} of ksmd CPU a page, {micro(model.b)} a batch"
    else:
        cost = f"{micro(model.c)} of ksmd CPU a page"
        notes.append("(per batch: needs a pages_to_scan 2x apart; CPU overstated)")
    estimated = " (estimated from rmap items)" if model.n_source == "rmap_items" else ""
    assumed = ", assumed" if model.hz_source == "assumed" else ""
    notes += [
        f"{model.n:,.0f} pages a full scan{estimated}",
        f"sleep {model.sleep_millisecs} ms = {model.sleep_jiffies} "
        f"jiff{'y' if model.sleep_jiffies == 1 else 'ies'} at HZ {model.hz}{assumed}, "
        "+1 for the timer",
    ]
    if model.run_delay + model.off_cpu >= 0.05:
        notes.append(
            f"for each second on a CPU ksmd waited {model.run_delay:.2g} s for one and "
            f"{model.off_cpu:.2g} s off it: the load lengthens its scans, and the figures move "
            "with it"
        )
    if model.skipped:
        notes.append(
            f"smart_scan skipped {model.skipped:,.0f} pages a scan: figures over "
            f"{model.scans} scans"
        )
    check, not_holding = advice.check, advice.not_holding
    if check is not None and not_holding is None:
        notes.append(
            f"at {check.pages_to_scan} pages {seconds(check.predicted_seconds)} a full scan "
            f"modelled, {seconds(check.measured_seconds)} seen"
        )
    rows = [
        Row(
            "Measured cost",
            cost,
            tuple(notes),
            figures={
                "advice.model.ksmd_cpu_seconds_per_page": model.c,
                "advice.model.ksmd_cpu_seconds_per_batch": model.b,
                "advice.model.pages_per_full_scan": model.n,
            },
        )
    ]
    if not_holding is not None:
        rows.append(
            Row(
                "Predictions",
                "none: the model does not hold here:",
                (not_holding,),
                figures={"advice.not_holding": not_holding},
            )
        )
    return rows


def recommendation_rows(snapshot: Snapshot, tuning: Tuning) -> list[Row]:
    """What the current setting costs, what to set and what it will cost, and the commands."""
    advice = tuning.advice
    rows = []
    if advice.current is not None:
        rows.append(
            Row(
                "Now",
                prediction(advice.current),
                figures={"advice.predicted.current": prediction_json(advice.current)},
            )
        )
    advisor = advisor_active(snapshot)
    target = advice.target_full_scan_seconds
    if advice.recommended is not None and target is not None:
        budget = tuning.options.cpu_budget
        rows.append(
            Row(
                "Recommended",
                f"full scan in {seconds(target)}, within {100 * budget:g}% of a CPU "
                "(--tuning.cpu-budget)",
                figures={
                    "advice.recommended.full_scan_seconds": target,
                    "advice.cpu_budget_ratio": budget,
                },
            )
        )
        notes = [ADVISOR_WHY] if advisor else []
        if advice.pages_to_scan == 1 and advice.recommended.full_scan_seconds < 0.95 * target:
            notes.append("(the slowest pages_to_scan; slower needs a longer sleep)")
        rows.append(
            Row(
                "Then",
                prediction(advice.recommended),
                tuple(notes),
                figures={"advice.predicted.recommended": prediction_json(advice.recommended)},
            )
        )
    todo = tuple(commands(tuning, advisor))
    if todo:
        rows.append(
            Row("Run as root", commands=todo, figures={"advice.recommended.commands": list(todo)})
        )
    return rows


def other_rows(tuning: Tuning, advisor_runs: bool) -> list[Row]:
    """The tuners that run here, each with its rule as the cause of the settings it writes;
    the kernel's advisor, where it runs, with where it settles. A tuner that does not run
    here is not listed."""
    rows = []
    for rival in RIVALS:
        pid = tuning.running.get(rival.key)
        if pid is None:
            continue
        choice = tuning.others[rival.key]
        figures = {f"advice.others.{rival.key}": choice_json(choice, rival.interval_seconds, pid)}
        value, then = choice_text(choice)
        rows.append(Row(rival.name, f"runs here (pid {pid}): {value}", then, figures=figures))
    advisor = tuning.kernel_advisor
    if advisor is not None and advisor_runs:
        notes = [f"then {prediction(advisor.predicted)}"]
        if advisor.floor_binds:
            notes.append("(held there by its fixed floor of 10% of a CPU)")
        rows.append(
            Row(
                "Kernel advisor",
                f"runs here: settles at pages_to_scan={advisor.pages_to_scan} "
                f"(target {advisor.target_scan_time} s, max {advisor.max_cpu_percent}%)",
                tuple(notes),
            )
        )
    return rows


def choice_text(choice: TunerChoice) -> tuple[str, tuple[str, ...]]:
    """What a tuner's rule sets now and why, and what the model predicts of it."""
    if choice.run is None:
        return choice.reason, ()
    if choice.run == 0:
        return f"stops KSM (run=0): {choice.reason}", ()
    what = f"pages_to_scan={choice.pages_to_scan}, sleep_millisecs={choice.sleep_millisecs}"
    then = () if choice.predicted is None else (f"then {prediction(choice.predicted)}",)
    return f"sets {what}: {choice.reason}", then


def prediction_json(p: Prediction | None) -> dict[str, float] | None:
    if p is None:
        return None
    return {"full_scan_seconds": p.full_scan_seconds, "ksmd_cpu_ratio": p.cpu_ratio}


def choice_json(choice: TunerChoice, interval_seconds: int, pid: int) -> dict[str, Any]:
    return {
        "pid": pid,
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
                rival.key: choice_json(
                    tuning.others[rival.key], rival.interval_seconds, tuning.running[rival.key]
                )
                for rival in RIVALS
                if rival.key in tuning.running
            },
            "kernel_advisor": advisor_json(tuning.kernel_advisor),
        },
    }

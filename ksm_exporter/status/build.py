"""The status model (status/model.py) from a Snapshot: each section's rows, the processes
table, the page's tiles. Built once per view; the renderers only walk what this returns.

A section is a function of the snapshot and the view, listed in `SECTIONS` in the order the
terminal shows it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from ksm_exporter.derive.process_selection import count_states, process_profit_bytes
from ksm_exporter.sources.ksm_files import merging_on
from ksm_exporter.sources.ksm_stat import PROCESS_FIELDS
from ksm_exporter.sources.process_identity import ProcessIdentity
from ksm_exporter.status.advice import STATE_SENTENCES, advice_section
from ksm_exporter.status.formats import (
    cpu_time,
    joined,
    mib,
    on_off,
    page_range,
    percent,
    run_state,
    size,
)
from ksm_exporter.status.model import (
    ProcessCounts,
    ProcessRow,
    ProcessTable,
    Row,
    Section,
    Status,
    Tile,
    View,
)
from ksm_exporter.status.sharing import sharing_section
from ksm_exporter.status.snapshot import Snapshot

UNREADABLE_HINT = "(run as root or with CAP_DAC_READ_SEARCH to read them all)"


def ksm_section(snapshot: Snapshot, _view: View) -> Section:
    ksm = snapshot.ksm
    sleep = None if ksm.sleep_millisecs is None else f"{ksm.sleep_millisecs} ms"
    rows = [
        Row("KSM", f"{run_state(ksm.run)} (run={ksm.run})", figures={"ksm.run": ksm.run}),
        Row(
            "Scanning",
            joined(("pages_to_scan", ksm.pages_to_scan), ("sleep", sleep)),
            figures={
                "ksm.pages_to_scan": ksm.pages_to_scan,
                "ksm.sleep_millisecs": ksm.sleep_millisecs,
            },
        ),
    ]
    if ksm.advisor_mode is not None:
        cpu = None if ksm.advisor_max_cpu is None else f"{ksm.advisor_max_cpu}%"
        target = ksm.advisor_target_scan_time
        low, high = ksm.advisor_min_pages_to_scan, ksm.advisor_max_pages_to_scan
        settings = joined(
            ("max CPU", cpu),
            ("target scan", None if target is None else f"{target} s"),
            ("pages", page_range(low, high)),
        )
        rows.append(
            Row(
                "Advisor",
                f"{ksm.advisor_mode.active}: {settings}",
                figures={
                    "ksm.advisor_max_cpu": ksm.advisor_max_cpu,
                    "ksm.advisor_target_scan_time": target,
                    "ksm.advisor_min_pages_to_scan": low,
                    "ksm.advisor_max_pages_to_scan": high,
                },
            )
        )
    options = joined(
        ("zero pages", on_off(ksm.use_zero_pages)),
        ("smart scan", on_off(ksm.smart_scan)),
        ("cross-NUMA", on_off(ksm.merge_across_nodes)),
        ("max sharing", ksm.max_page_sharing),
    )
    if options:
        rows.append(Row("Options", options))
    return Section("ksm", "KSM", tuple(rows), {"ksm": ksm.as_dict()})


def memory_section(snapshot: Snapshot, _view: View) -> Section:
    ksm, savings = snapshot.ksm, snapshot.savings
    ram = "" if snapshot.mem_total_bytes is None else f" of {size(snapshot.mem_total_bytes)} RAM"
    rows = [
        Row(
            "Memory saved",
            f"{mib(savings.saved_bytes)} ({percent(savings.saved_ratio, 2)}{ram})",
            figures={
                "memory.saved_bytes": savings.saved_bytes,
                "memory.saved_ratio": savings.saved_ratio,
                "memory.mem_total_bytes": snapshot.mem_total_bytes,
            },
        )
    ]
    if savings.memory_profit_bytes is not None:
        source = "general_profit" if ksm.general_profit is not None else "from the sysfs counters"
        rows.append(
            Row(
                "Net profit",
                f"{mib(savings.memory_profit_bytes)} after metadata ({source})",
                figures={"memory.memory_profit_bytes": savings.memory_profit_bytes},
            )
        )
    counts = {
        "shared": "pages_shared",
        "sharing": "pages_sharing",
        "unshared": "pages_unshared",
        "volatile": "pages_volatile",
        "zero": "ksm_zero_pages",
    }
    kept = ksm.run is not None and not merging_on(ksm.run)
    rows.append(
        Row(
            "Pages",
            joined(*((word, ksm.values.get(name)) for word, name in counts.items())),
            notes=(
                "(kept from the last pass while KSM is not running; the processes' figures "
                "below are live)",
            )
            if kept
            else (),
            figures={f"ksm.{name}": ksm.values.get(name) for name in counts.values()},
        )
    )
    if savings.mappings_per_shared_page is not None:
        rows.append(
            Row(
                "Sharing",
                f"{savings.mappings_per_shared_page:.2f} mappings per shared page",
                figures={"memory.mappings_per_shared_page": savings.mappings_per_shared_page},
            )
        )
    wasted = savings.unshared_pages_per_sharing_page
    if wasted is not None:
        figure = "all" if math.isinf(wasted) else f"{wasted:.2f}"
        per = "scanned, none sharing" if math.isinf(wasted) else "per sharing page"
        rows.append(
            Row(
                "Unshared",
                f"{figure} unshared pages {per} (wasted effort)",
                figures={"memory.unshared_pages_per_sharing_page": json_number(wasted)},
            )
        )
    document = {
        "page_size_bytes": snapshot.page_size,
        "mem_total_bytes": snapshot.mem_total_bytes,
        **{k: json_number(v) for k, v in dataclasses.asdict(savings).items()},
    }
    return Section("memory", "Memory", tuple(rows), {"memory": document})


def json_number(value: object) -> object:
    """+Inf as Prometheus' HTTP API writes it: JSON has no infinity."""
    return "+Inf" if isinstance(value, float) and math.isinf(value) else value


def cost_section(snapshot: Snapshot, view: View) -> Section:
    """ksmd's CPU and the full scans: over the window `status` watched, or as the server's
    sampler saw them since it started."""
    window = snapshot.window
    last = window.cost.last
    pid = None if last is None else last.ksmd_pid
    over = (
        f"over {window.seconds:.1f} s"
        if view is View.COMMAND
        else (f"over the last {window.seconds:.1f} s")
    )
    if window.cpu_ratio is None or last is None:
        ksmd = "unknown: no ksmd under --path.procfs (use the host's /proc)"
    else:
        ksmd = (
            f"{percent(window.cpu_ratio)} of one CPU {over} "
            f"(pid {pid}, {window.ksmd_cpu_seconds:.2f} s CPU in all)"
        )
    ksmd_figures = {
        "pid": pid,
        "cpu_seconds_total": window.ksmd_cpu_seconds,
        "cpu_ratio": window.cpu_ratio,
        "window_seconds": window.seconds,
    }
    full_scan_figures = {
        "completed_in_window": window.full_scans_completed,
        "duration_seconds": window.cost.full_scan_seconds,
        "ksmd_cpu_seconds": window.cpu_seconds_per_full_scan,
    }
    rows = [
        Row("ksmd CPU", ksmd, figures={f"ksmd.{k}": v for k, v in ksmd_figures.items()}),
        full_scan_row(snapshot, view),
    ]
    full_scans = snapshot.ksm.full_scans if last is None else last.full_scans
    if full_scans is not None:
        rows.append(Row("Full scans", f"{full_scans} since KSM started or was reset"))
    return Section(
        "cost", "Cost", tuple(rows), {"ksmd": ksmd_figures, "full_scan": full_scan_figures}
    )


def full_scan_row(snapshot: Snapshot, view: View) -> Row:
    """The last full scan's time and CPU. `status` times a scan only where two complete in
    its window; the server's sampler has watched since it started."""
    window = snapshot.window
    cost = window.cost
    seconds = cost.full_scan_seconds
    if view is View.SERVER:
        if seconds is None:
            return Row("Full scan", "unknown: none seen to complete since the exporter started")
        spent = cost.cpu_seconds_per_full_scan
        cpu = "" if spent is None else f", {cpu_time(spent)} of ksmd CPU each"
        return Row(
            "Full scan", f"{seconds:.2f} s{cpu}", figures={"full_scan.duration_seconds": seconds}
        )
    per_scan = window.cpu_seconds_per_full_scan
    if seconds is not None:
        cpu = "" if per_scan is None else f", {cpu_time(per_scan)} of ksmd CPU each"
        scan = f"{seconds:.2f} s{cpu}"
    elif window.full_scans_completed:
        each = "" if per_scan is None else f", {cpu_time(per_scan)} CPU each"
        scan = (
            f"{window.full_scans_completed} completed in {window.seconds:.1f} s{each};"
            " timing needs two"
        )
    else:
        scan = f"unknown: none completed in {window.seconds:.1f} s (watch longer: --window)"
    return Row(
        "Full scan",
        scan,
        figures={
            "full_scan.completed_in_window": window.full_scans_completed,
            "full_scan.duration_seconds": seconds,
            "full_scan.ksmd_cpu_seconds": per_scan,
        },
    )


def process_table(snapshot: Snapshot) -> ProcessTable:
    sample = snapshot.processes
    if sample is None:
        return ProcessTable(Row("Processes", "not read: --no-collector.process"), None, ())
    if not sample.sweep.fields:
        unknown = "unknown: this kernel has no per-process KSM counters"
        return ProcessTable(Row("Processes", unknown), None, ())
    states = count_states(sample.sweep.registered)
    unreadable = sample.sweep.unreadable
    summary = Row(
        "Processes",
        f"{states.registered} registered with KSM, {states.merging} merging"
        + (f", {unreadable} unreadable" if unreadable else ""),
        notes=(UNREADABLE_HINT,) if unreadable else (),
    )
    rows = []
    for process in sample.selection.own:
        stat = process.stat
        merging = None if stat.merging_pages is None else stat.merging_pages * snapshot.page_size
        counters = {spec.name: stat.get(spec.name) for spec in PROCESS_FIELDS}
        del counters["profit"]  # written as profit_bytes, or its formula where it is missing
        rows.append(
            ProcessRow(
                process.pid,
                sample.identities.get(process.pid, ProcessIdentity()),
                counters,
                merging,
                process_profit_bytes(stat, snapshot.page_size),
            )
        )
    counts = ProcessCounts(states.registered, states.merging, unreadable)
    return ProcessTable(summary, counts, tuple(rows))


def tiles(snapshot: Snapshot) -> tuple[Tile, ...]:
    savings, ksm, window = snapshot.savings, snapshot.ksm, snapshot.window
    ram = "" if snapshot.mem_total_bytes is None else f" of {size(snapshot.mem_total_bytes)} RAM"
    scan = window.cost.full_scan_seconds
    advice = None if snapshot.tuning is None else snapshot.tuning.advice
    state = "unknown" if advice is None else advice.state or "measuring"
    if advice is None:
        sentence = ""
    elif advice.state is None:
        sentence = f"until {advice.scans_needed} more full scans complete"
    else:
        sentence = STATE_SENTENCES[advice.state]
    found = [
        Tile(
            "saved", "Memory saved", mib(savings.saved_bytes), percent(savings.saved_ratio, 2) + ram
        )
    ]
    if ksm.general_profit is not None:
        found.append(Tile("profit", "Net profit", mib(ksm.general_profit), "after metadata"))
    found += [
        Tile("ksmd-cpu", "ksmd CPU", percent(window.cpu_ratio), "of one CPU"),
        Tile(
            "full-scan",
            "Full scan",
            "unknown" if scan is None else f"{scan:.2f} s",
            "" if scan is None else "time KSM ran for the last one",
        ),
        Tile("tuning", "Tuning", state, sentence),
    ]
    return tuple(found)


def why_section(snapshot: Snapshot, _view: View) -> Section:
    """Each process and VM that merges little, with the first cause that holds
    (derive/causes.py); `status --why PID` shows every check and its evidence."""
    rows = []
    listed = []
    for explained in snapshot.why:
        explanation, who = explained.explanation, explained.identity
        vm = f", VM {who.vm}" if who.vm else ""
        cause = explanation.cause
        rows.append(
            Row(
                f"pid {explanation.pid}",
                f"{who.comm or '?'}{vm}: {explanation.reason}",
                (explanation.sentence,),
            )
        )
        listed.append(
            {
                "pid": explanation.pid,
                "comm": who.comm,
                "vm": who.vm,
                "reason": explanation.reason,
                "sentence": explanation.sentence,
                "evidence": []
                if cause is None
                else [{"file": e.path, "value": e.value} for e in cause.evidence],
            }
        )
    if not rows:
        rows.append(Row("Merging little", "none: every process registered merges well"))
    return Section("why", "Merging little", tuple(rows), {"why": listed})


# The sections, in the order the terminal shows them.
SECTIONS: tuple[Callable[[Snapshot, View], Section], ...] = (
    ksm_section,
    memory_section,
    cost_section,
    advice_section,
    why_section,
    sharing_section,
)


def build_status(snapshot: Snapshot, view: View = View.COMMAND) -> Status:
    return Status(
        tiles=tiles(snapshot),
        sections=tuple(section(snapshot, view) for section in SECTIONS),
        processes=process_table(snapshot),
        problems=snapshot.problems,
    )

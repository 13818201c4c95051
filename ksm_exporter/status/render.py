"""A snapshot as text for an 80-column terminal, or as JSON for scripts."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from ksm_exporter.derive.process_selection import count_states, process_profit_bytes
from ksm_exporter.sources.kernel_file import Problem
from ksm_exporter.sources.ksm_files import RUN_OFFLINE, merging_on, run_setting
from ksm_exporter.sources.ksm_stat import PROCESS_FIELDS
from ksm_exporter.sources.process_identity import ProcessIdentity
from ksm_exporter.status.advice import advice_json, advice_lines
from ksm_exporter.status.snapshot import Snapshot

MIB = 1 << 20
WIDTH = 80
RUN_STATES = {0: "stopped", 1: "running", 2: "unmerging all pages"}


def run_state(run: int | None) -> str:
    if run is None:
        return "unknown"
    state = RUN_STATES.get(run_setting(run), "unknown")
    if run & RUN_OFFLINE:
        return f"{state}, paused while memory is taken offline"
    return state


def mib(value: int | None) -> str:
    return "unknown" if value is None else f"{value / MIB:,.1f} MiB"


def size(value: int | None) -> str:
    """Bytes in the largest binary unit that keeps the figure above 1: -90112 is -88.0 KiB."""
    if value is None:
        return "-"
    for unit, factor in (("GiB", 1 << 30), ("MiB", MIB), ("KiB", 1 << 10)):
        if abs(value) >= factor:
            return f"{value / factor:,.1f} {unit}"
    return f"{value} B"


def percent(ratio: float | None, digits: int = 1) -> str:
    return "unknown" if ratio is None else f"{100 * ratio:.{digits}f}%"


def on_off(value: int | None) -> str | None:
    return None if value is None else ("on" if value else "off")


def joined(*parts: tuple[str, object | None]) -> str:
    """`label value` pairs, leaving out the values this kernel does not have."""
    return ", ".join(f"{label} {value}" for label, value in parts if value is not None)


def page_range(low: int | None, high: int | None) -> str | None:
    return None if low is None or high is None else f"{low}-{high}"


def state_lines(snapshot: Snapshot) -> list[str]:
    ksm = snapshot.ksm
    run = run_state(ksm.run)
    sleep = None if ksm.sleep_millisecs is None else f"{ksm.sleep_millisecs} ms"
    lines = [
        f"KSM            {run} (run={ksm.run})",
        "Scanning       " + joined(("pages_to_scan", ksm.pages_to_scan), ("sleep", sleep)),
    ]
    if ksm.advisor_mode is not None:
        cpu = None if ksm.advisor_max_cpu is None else f"{ksm.advisor_max_cpu}%"
        target = ksm.advisor_target_scan_time
        lines.append(
            f"Advisor        {ksm.advisor_mode.active}: "
            + joined(
                ("max CPU", cpu),
                ("target scan", None if target is None else f"{target} s"),
                ("pages", page_range(ksm.advisor_min_pages_to_scan, ksm.advisor_max_pages_to_scan)),
            )
        )
    options = joined(
        ("zero pages", on_off(ksm.use_zero_pages)),
        ("smart scan", on_off(ksm.smart_scan)),
        ("cross-NUMA", on_off(ksm.merge_across_nodes)),
        ("max sharing", ksm.max_page_sharing),
    )
    if options:
        lines.append(f"Options        {options}")
    return lines


def memory_lines(snapshot: Snapshot) -> list[str]:
    ksm, savings = snapshot.ksm, snapshot.savings
    ram = "" if snapshot.mem_total_bytes is None else f" of {size(snapshot.mem_total_bytes)} RAM"
    lines = [f"Memory saved   {mib(savings.saved_bytes)} ({percent(savings.saved_ratio, 2)}{ram})"]
    if savings.memory_profit_bytes is not None:
        source = "general_profit" if ksm.general_profit is not None else "from the sysfs counters"
        lines.append(f"Net profit     {mib(savings.memory_profit_bytes)} after metadata ({source})")
    lines.append(
        "Pages          "
        + joined(
            ("shared", ksm.pages_shared),
            ("sharing", ksm.pages_sharing),
            ("unshared", ksm.pages_unshared),
            ("volatile", ksm.pages_volatile),
            ("zero", ksm.ksm_zero_pages),
        )
    )
    if ksm.run is not None and not merging_on(ksm.run):
        lines.append(
            "               (kept from the last pass while KSM is not running; the processes'"
        )
        lines.append("               figures below are live)")
    if savings.mappings_per_shared_page is not None:
        lines.append(
            f"Sharing        {savings.mappings_per_shared_page:.2f} mappings per shared page"
        )
    wasted = savings.unshared_pages_per_sharing_page
    if wasted is not None:
        figure = "all" if math.isinf(wasted) else f"{wasted:.2f}"
        per = "scanned, none sharing" if math.isinf(wasted) else "per sharing page"
        lines.append(f"Unshared       {figure} unshared pages {per} (wasted effort)")
    return lines


def cost_lines(snapshot: Snapshot) -> list[str]:
    window = snapshot.window
    last = window.cost.last
    over = f"over {window.seconds:.1f} s"
    if window.cpu_ratio is None or last is None:
        ksmd = "unknown: no ksmd under --path.procfs (use the host's /proc)"
    else:
        ksmd = (
            f"{percent(window.cpu_ratio)} of one CPU {over} "
            f"(pid {last.ksmd_pid}, {window.ksmd_cpu_seconds:.2f} s CPU in all)"
        )
    lines = [f"ksmd CPU       {ksmd}"]
    seconds = window.cost.full_scan_seconds
    per_scan = window.cpu_seconds_per_full_scan
    cpu = "" if per_scan is None else f", {cpu_time(per_scan)} of ksmd CPU each"
    if seconds is not None:
        scan = f"{seconds:.2f} s{cpu}"
    elif window.full_scans_completed:
        each = "" if per_scan is None else f", {cpu_time(per_scan)} CPU each"
        scan = (
            f"{window.full_scans_completed} completed in {window.seconds:.1f} s{each};"
            " timing needs two"
        )
    else:
        scan = f"unknown: none completed in {window.seconds:.1f} s (watch longer: --window)"
    lines.append(f"Full scan      {scan}")
    full_scans = snapshot.ksm.full_scans if last is None else last.full_scans
    if full_scans is not None:
        lines.append(f"Full scans     {full_scans} since KSM started or was reset")
    return lines


def cpu_time(seconds: float) -> str:
    """Milliseconds below a second: a scan of 0.2 s may cost 4 ms of CPU."""
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1000:.1f} ms"


def shorten(text: str, width: int) -> str:
    """Cut from the left: the end of a cgroup path is the part that names the workload."""
    return text if len(text) <= width else "..." + text[-(width - 3) :]


@dataclasses.dataclass(frozen=True, slots=True)
class ProcessRow:
    """One top process as `status` and the page show it."""

    pid: int
    comm: str
    merging_bytes: int | None
    profit_bytes: int | None
    where: str  # the guest's name, else the cgroup path


def process_rows(snapshot: Snapshot) -> list[ProcessRow]:
    sample = snapshot.processes
    if sample is None:
        return []
    rows = []
    for process in sample.selection.own:
        who = sample.identities.get(process.pid, ProcessIdentity())
        stat = process.stat
        merging = None if stat.merging_pages is None else stat.merging_pages * snapshot.page_size
        profit = process_profit_bytes(stat, snapshot.page_size)
        where = f"vm {who.vm}" if who.vm else who.cgroup
        rows.append(ProcessRow(process.pid, who.comm, merging, profit, where))
    return rows


def process_lines(snapshot: Snapshot) -> list[str]:
    sample = snapshot.processes
    if sample is None or not sample.sweep.fields:
        return ["Processes      unknown: this kernel has no per-process KSM counters"]
    states = count_states(sample.sweep.registered)
    lines = [
        f"Processes      {states.registered} registered with KSM, {states.merging} merging"
        + ("" if not sample.sweep.unreadable else f", {sample.sweep.unreadable} unreadable")
    ]
    if sample.sweep.unreadable:
        lines.append("               (run as root or with CAP_DAC_READ_SEARCH to read them all)")
    if not sample.selection.own:
        return lines
    head = f"{'PID':>7} {'COMM':<15} {'MERGING':>11} {'PROFIT':>11}  VM OR CGROUP"
    lines += ["", "Top processes by merging pages", head]
    room = WIDTH - len(head) + len("VM OR CGROUP")
    for row in process_rows(snapshot):
        lines.append(
            f"{row.pid:>7} {row.comm[:15]:<15} {size(row.merging_bytes):>11} "
            f"{size(row.profit_bytes):>11}  {shorten(row.where, room)}"
        )
    return lines


def problem_lines(problem: Problem) -> list[str]:
    """The reason, then the path on a line of its own: never cut, so it can be copied."""
    return [f"Problem        {problem.reason}:", f"{'':15}{problem.path}"]


def render_text(snapshot: Snapshot) -> str:
    sections = [
        state_lines(snapshot),
        memory_lines(snapshot),
        cost_lines(snapshot),
        advice_lines(snapshot),
        process_lines(snapshot),
    ]
    if snapshot.problems:
        sections.append([line for p in snapshot.problems for line in problem_lines(p)])
    return "\n\n".join("\n".join(lines) for lines in sections if lines) + "\n"


def to_json(snapshot: Snapshot) -> dict[str, Any]:
    window = snapshot.window
    last = window.cost.last
    sample = snapshot.processes
    top: list[dict[str, Any]] = []
    processes: dict[str, Any] | None = None
    if sample is not None and sample.sweep.fields:
        for process in sample.selection.own:
            who = sample.identities.get(process.pid, ProcessIdentity())
            top.append(
                {
                    "pid": process.pid,
                    **who.as_dict(),
                    **{
                        spec.name: process.stat.get(spec.name)
                        for spec in PROCESS_FIELDS
                        if spec.name != "profit"
                    },
                    "profit_bytes": process_profit_bytes(process.stat, snapshot.page_size),
                }
            )
        states = count_states(sample.sweep.registered)
        processes = {
            "registered": states.registered,
            "merging": states.merging,
            "unreadable": sample.sweep.unreadable,
            "top": top,
        }
    return {
        "ksm": snapshot.ksm.as_dict(),
        "memory": {
            "page_size_bytes": snapshot.page_size,
            "mem_total_bytes": snapshot.mem_total_bytes,
            **{k: json_number(v) for k, v in dataclasses.asdict(snapshot.savings).items()},
        },
        "ksmd": {
            "pid": None if last is None else last.ksmd_pid,
            "cpu_seconds_total": window.ksmd_cpu_seconds,
            "cpu_ratio": window.cpu_ratio,
            "window_seconds": window.seconds,
        },
        "full_scan": {
            "completed_in_window": window.full_scans_completed,
            "duration_seconds": window.cost.full_scan_seconds,
            "ksmd_cpu_seconds": window.cpu_seconds_per_full_scan,
        },
        "advice": advice_json(snapshot),
        "processes": processes,
        "problems": [dataclasses.asdict(p) for p in snapshot.problems],
    }


def json_number(value: object) -> object:
    """+Inf as Prometheus' HTTP API writes it: JSON has no infinity."""
    return "+Inf" if isinstance(value, float) and math.isinf(value) else value


def render_json(snapshot: Snapshot) -> str:
    return json.dumps(to_json(snapshot), indent=2) + "\n"

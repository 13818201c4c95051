"""The status view served at `/`: what `status` prints, as one self-contained HTML page.

A pure function of the status snapshot (what `status --json` renders) and the history of the
last hour. Figures come from the same formatters and lines as `status`, so the page and the
terminal agree. Every string from the host (command names, guest names, cgroup paths, file
paths) goes through `html.escape`: any local user can name a process `<script>`.
The only inline style sheet is allowed by its hash in the Content-Security-Policy; the page
has no script, and reloads itself with a meta refresh.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape

from ksm_exporter.derive.process_selection import count_states
from ksm_exporter.status.advice import (
    STATE_SENTENCES,
    advice_lines,
    advisor_active,
    commands,
    needs_more,
)
from ksm_exporter.status.chart import line_chart, nice_ceiling
from ksm_exporter.status.history import SPAN_SECONDS, STEP_SECONDS, Point
from ksm_exporter.status.render import (
    cpu_time,
    memory_lines,
    mib,
    percent,
    problem_lines,
    process_rows,
    size,
    state_lines,
)
from ksm_exporter.status.snapshot import Snapshot

LABEL_WIDTH = 15  # the label column of `status`'s lines
REFRESH_SECONDS = 10

STYLE = """
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:#1f2328;background:#f6f8fa}
main{max-width:1180px;margin:0 auto;padding:12px 16px 24px}
h1{font-size:22px;margin:4px 0 0}
h2{font-size:16px;margin:0 0 8px}
.meta{color:#57606a;margin:2px 0 12px;font-size:13px}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:10px}
.tile,section{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:10px 12px}
.tile .k{color:#57606a;font-size:13px}
.tile .v{font-size:22px;font-weight:600;white-space:nowrap}
.tile .s{color:#57606a;font-size:13px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(340px,1fr));gap:10px;
margin-top:10px}
section{margin-top:10px;min-width:0}
.grid section{margin-top:0}
svg.chart{display:block;width:100%;height:auto}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0}
dt{color:#57606a}
dd{margin:0;overflow-wrap:anywhere}
pre{background:#f6f8fa;border:1px solid #d0d7de;border-radius:6px;padding:6px 8px;margin:4px 0;
overflow-x:auto;font-size:13px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #eaeef2;vertical-align:top}
th{color:#57606a;font-weight:600}
td.n,th.n{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}
td.w{overflow-wrap:anywhere;min-width:12em}
.problem{color:#9a3412}
nav a{margin-right:14px}
@media (max-width:600px){main{padding:8px}dl{grid-template-columns:1fr}
dt{margin-top:6px}.tile .v{font-size:19px}.grid{grid-template-columns:1fr}}
"""
STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
# Everything the page needs: its own style sheet; inline SVG needs no source of its own.
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src '{STYLE_HASH}'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True, slots=True)
class PageContext:
    host: str  # the host's name, as the kernel reports it
    telemetry_path: str
    taken_at: float  # Unix time of the reading


def page(snapshot: Snapshot, history: Sequence[Point], context: PageContext) -> str:
    body = [
        tiles(snapshot),
        '<div class="grid">',
        charts(history),
        "</div>",
        '<div class="grid">',
        rows_section("KSM", state_lines(snapshot)),
        rows_section("Memory", memory_lines(snapshot)),
        cost_section(snapshot),
        "</div>",
        advice_section(snapshot),
        processes_section(snapshot),
        problems_section(snapshot),
    ]
    return document(context, "".join(body))


def unavailable_page(sentence: str, context: PageContext) -> str:
    """Where KSM cannot be read: the sentence `status` exits with."""
    return document(context, f'<section><p class="problem">{escape(sentence)}</p></section>')


def document(context: PageContext, body: str) -> str:
    host = escape(context.host)
    taken = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(context.taken_at))
    metrics = escape(context.telemetry_path, quote=True)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
        f"<title>KSM on {host}</title><style>{STYLE}</style></head><body><main>"
        f"<h1>KSM on {host}</h1>"
        f'<p class="meta">Read at <span id="taken">{taken}</span>; '
        f"this page reloads every {REFRESH_SECONDS} s.</p>"
        f"{body}"
        f'<section><nav><a href="{metrics}">Metrics</a><a href="/api/status">Status JSON</a>'
        '<a href="/-/healthy">Health</a><a href="/-/ready">Readiness</a></nav></section>'
        "</main></body></html>\n"
    )


def tile(key: str, name: str, value: str, sub: str = "") -> str:
    extra = f'<div class="s">{escape(sub)}</div>' if sub else ""
    return (
        f'<div class="tile" id="{key}"><div class="k">{escape(name)}</div>'
        f'<div class="v">{escape(value)}</div>{extra}</div>'
    )


def tiles(snapshot: Snapshot) -> str:
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
    parts = [
        tile(
            "saved", "Memory saved", mib(savings.saved_bytes), percent(savings.saved_ratio, 2) + ram
        ),
    ]
    if ksm.general_profit is not None:
        parts.append(tile("profit", "Net profit", mib(ksm.general_profit), "after metadata"))
    parts += [
        tile("ksmd-cpu", "ksmd CPU", percent(window.cpu_ratio), "of one CPU"),
        tile(
            "full-scan",
            "Full scan",
            "unknown" if scan is None else f"{scan:.2f} s",
            "" if scan is None else "time KSM ran for the last one",
        ),
        tile("tuning", "Tuning", state, sentence),
    ]
    return f'<div class="tiles">{"".join(parts)}</div>'


def charts(history: Sequence[Point]) -> str:
    saved = [(p.age_seconds, p.saved_bytes) for p in history]
    cpu = [(p.age_seconds, p.ksmd_cpu_ratio) for p in history]
    return chart_section(
        "saved-chart",
        "Memory saved, last hour",
        line_chart(
            saved,
            title="Memory saved over the last hour",
            top=byte_ceiling(max((v for _, v in saved if v is not None), default=0.0)),
            label=lambda v: size(round(v)) if v else "0",
            span=SPAN_SECONDS,
            gap=2.5 * STEP_SECONDS,
        ),
    ) + chart_section(
        "cpu-chart",
        "ksmd CPU, last hour",
        line_chart(
            cpu,
            title="ksmd CPU over the last hour, share of one CPU",
            top=nice_ceiling(max((v for _, v in cpu if v is not None), default=0.0) or 0.01),
            label=lambda v: f"{100 * v:.3g}%",
            span=SPAN_SECONDS,
            gap=2.5 * STEP_SECONDS,
        ),
    )


def byte_ceiling(value: float) -> float:
    """A round top for a chart of bytes, in the binary unit `size` will print it in."""
    for factor in (1 << 30, 1 << 20, 1 << 10):
        if value >= factor:
            return nice_ceiling(value / factor) * factor
    return nice_ceiling(value or 1024.0)


def chart_section(key: str, heading: str, svg: str) -> str:
    return f'<section id="{key}"><h2>{escape(heading)}</h2>{svg}</section>'


def label_rows(lines: Iterable[str], code: frozenset[str] = frozenset()) -> str:
    """`status` lines as a definition list: its 15-column label, then the text; lines with an
    empty label continue the row above; the exact commands become code blocks."""
    out: list[str] = []
    for line in lines:
        if line.strip() in code:
            out.append(f"<dd><pre><code>{escape(line.strip())}</code></pre></dd>")
            continue
        label, text = line[:LABEL_WIDTH].strip(), line[LABEL_WIDTH:].strip()
        if label.endswith(":") and not text:  # "Run as root:", its commands follow
            label = label.removesuffix(":")
        if label:
            out.append(f"<dt>{escape(label)}</dt>")
        if text:
            out.append(f"<dd>{escape(text)}</dd>")
    return f"<dl>{''.join(out)}</dl>"


def rows_section(heading: str, lines: list[str], code: frozenset[str] = frozenset()) -> str:
    if not lines:
        return ""
    return f"<section><h2>{escape(heading)}</h2>{label_rows(lines, code)}</section>"


def cost_section(snapshot: Snapshot) -> str:
    """ksmd's CPU and the full scans, as the server's sampler sees them."""
    window = snapshot.window
    last = window.cost.last
    lines = []
    if window.cpu_ratio is None or last is None:
        lines.append("ksmd CPU       unknown: no ksmd under --path.procfs (use the host's /proc)")
    else:
        lines.append(
            f"ksmd CPU       {percent(window.cpu_ratio)} of one CPU over the last "
            f"{window.seconds:.1f} s (pid {last.ksmd_pid}, "
            f"{window.ksmd_cpu_seconds:.2f} s CPU in all)"
        )
    cost = window.cost
    if cost.full_scan_seconds is None:
        lines.append("Full scan      unknown: none seen to complete since the exporter started")
    else:
        each = cost.cpu_seconds_per_full_scan
        cpu = "" if each is None else f", {cpu_time(each)} of ksmd CPU each"
        lines.append(f"Full scan      {cost.full_scan_seconds:.2f} s{cpu}")
    full_scans = snapshot.ksm.full_scans if last is None else last.full_scans
    if full_scans is not None:
        lines.append(f"Full scans     {full_scans} since KSM started or was reset")
    return rows_section("Cost", lines)


def advice_section(snapshot: Snapshot) -> str:
    """`status`'s advice, without its hints about the terminal command's --window."""
    tuning = snapshot.tuning
    if tuning is None:
        return ""
    hints = set(needs_more(snapshot, tuning.advice)[1:])
    lines = [line for line in advice_lines(snapshot) if line[LABEL_WIDTH:] not in hints]
    code = frozenset(commands(tuning, advisor_active(snapshot)))
    return rows_section("Advice", lines, code)


def processes_section(snapshot: Snapshot) -> str:
    sample = snapshot.processes
    if sample is None:
        return rows_section("Processes", ["Processes      not read: --no-collector.process"])
    if not sample.sweep.fields:
        return rows_section(
            "Processes", ["Processes      unknown: this kernel has no per-process KSM counters"]
        )
    states = count_states(sample.sweep.registered)
    unreadable = sample.sweep.unreadable
    summary = f"{states.registered} registered with KSM, {states.merging} merging" + (
        f", {unreadable} unreadable (run as root or with CAP_DAC_READ_SEARCH to read them all)"
        if unreadable
        else ""
    )
    rows = []
    for row in process_rows(snapshot):
        rows.append(
            f'<tr><td class="n">{row.pid}</td><td>{escape(row.comm)}</td>'
            f'<td class="n">{size(row.merging_bytes)}</td>'
            f'<td class="n">{size(row.profit_bytes)}</td>'
            f'<td class="w">{escape(row.where)}</td></tr>'
        )
    table = ""
    if rows:
        table = (
            '<div class="scroll"><table id="processes"><thead><tr><th class="n">PID</th>'
            '<th>COMM</th><th class="n">MERGING</th><th class="n">PROFIT</th>'
            f"<th>VM OR CGROUP</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        )
    return (
        f'<section><h2>Top processes by merging pages</h2><p id="registered">{escape(summary)}</p>'
        f"{table}</section>"
    )


def problems_section(snapshot: Snapshot) -> str:
    if not snapshot.problems:
        return ""
    lines = [line for p in snapshot.problems for line in problem_lines(p)]
    return f'<section class="problem" id="problems"><h2>Problems</h2>{label_rows(lines)}</section>'

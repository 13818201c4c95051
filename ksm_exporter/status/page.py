"""The status view served at `/`: the status model (status/model.py) as one self-contained
HTML page.

A pure function of the model (what `status` and `status --json` render too) and the history
of the last hour: each section's rows become a definition list, one <dt> and one <dd> a row
(the value, its notes, its commands), so the page and the terminal agree by construction.
Every string from the host (command names, guest names, cgroup paths, file paths) goes
through `html.escape`: any local user can name a process `<script>`.
The only inline style sheet is allowed by its hash in the Content-Security-Policy; the page
has no script, and reloads itself with a meta refresh.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from ksm_exporter.sources.kernel_file import Problem
from ksm_exporter.status.chart import line_chart, nice_ceiling
from ksm_exporter.status.formats import size
from ksm_exporter.status.history import SPAN_SECONDS, STEP_SECONDS, Point
from ksm_exporter.status.model import ProcessTable, Row, Section, Status, Tile

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
.note{color:#57606a;font-size:13px}
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


def page(status: Status, history: Sequence[Point], context: PageContext) -> str:
    body = [
        tiles(status.tiles),
        '<div class="grid">',
        charts(history),
        "</div>",
        sections(status.sections),
        processes_section(status.processes),
        problems_section(status.problems),
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


def tile_html(tile: Tile) -> str:
    extra = f'<div class="s">{escape(tile.sub)}</div>' if tile.sub else ""
    return (
        f'<div class="tile" id="{escape(tile.key, quote=True)}"><div class="k">'
        f'{escape(tile.name)}</div><div class="v">{escape(tile.value)}</div>{extra}</div>'
    )


def tiles(found: Sequence[Tile]) -> str:
    return f'<div class="tiles">{"".join(tile_html(tile) for tile in found)}</div>'


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


def row_html(row: Row) -> str:
    """One <dt> and one <dd>: two cells of the list's grid whatever the row holds, so no
    value ever lands in the label column."""
    notes = "".join(f'<div class="note">{escape(note)}</div>' for note in row.notes)
    code = "".join(f"<pre><code>{escape(command)}</code></pre>" for command in row.commands)
    return f"<dt>{escape(row.label)}</dt><dd>{escape(row.value)}{notes}{code}</dd>"


def definitions(rows: Sequence[Row]) -> str:
    return f"<dl>{''.join(row_html(row) for row in rows)}</dl>"


def section_html(section: Section) -> str:
    if not section.rows:
        return ""
    return (
        f'<section id="{escape(section.key, quote=True)}"><h2>{escape(section.heading)}</h2>'
        f"{definitions(section.rows)}</section>"
    )


def sections(found: Sequence[Section]) -> str:
    """Narrow sections side by side in a grid, a wide one across the page."""
    out: list[str] = []
    narrow: list[str] = []
    for section in found:
        if section.wide:
            out += [grid(narrow), section_html(section)]
            narrow = []
        else:
            narrow.append(section_html(section))
    return "".join([*out, grid(narrow)])


def grid(parts: list[str]) -> str:
    return f'<div class="grid">{"".join(parts)}</div>' if any(parts) else ""


def processes_section(table: ProcessTable) -> str:
    summary = table.summary
    if table.counts is None:
        return f"<section><h2>Processes</h2>{definitions([summary])}</section>"
    said = " ".join((summary.value, *summary.notes))
    rows = [
        f'<tr><td class="n">{row.pid}</td><td>{escape(row.comm)}</td>'
        f'<td class="n">{size(row.merging_bytes)}</td>'
        f'<td class="n">{size(row.profit_bytes)}</td>'
        f'<td class="w">{escape(row.where)}</td></tr>'
        for row in table.rows
    ]
    listing = ""
    if rows:
        listing = (
            '<div class="scroll"><table id="processes"><thead><tr><th class="n">PID</th>'
            '<th>COMM</th><th class="n">MERGING</th><th class="n">PROFIT</th>'
            f"<th>VM OR CGROUP</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        )
    return (
        f'<section><h2>Top processes by merging pages</h2><p id="registered">{escape(said)}</p>'
        f"{listing}</section>"
    )


def problems_section(problems: Sequence[Problem]) -> str:
    if not problems:
        return ""
    rows = [Row("Problem", f"{p.reason}:", (p.path,)) for p in problems]
    return f'<section class="problem" id="problems"><h2>Problems</h2>{definitions(rows)}</section>'

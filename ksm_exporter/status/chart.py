"""A line chart of the last hour as inline SVG: no script, no style sheet, no external asset.

Drawn in a fixed view box that the page scales to its width; a gap in the data (unknown
figures, or the exporter not running) is a gap in the line, never a line drawn through it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from html import escape

WIDTH = 480
HEIGHT = 160
LEFT = 80  # room for the value labels
RIGHT = 8
TOP = 10
BOTTOM = 24  # room for the time labels
PLOT_WIDTH = WIDTH - LEFT - RIGHT
PLOT_HEIGHT = HEIGHT - TOP - BOTTOM

Series = Sequence[tuple[float, float | None]]  # (age in seconds, value), oldest first


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is at least `value`."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power * (1 + 1e-9):
            return float(step * power)
    return 10.0 * power


def x_of(age: float, span: float) -> float:
    return LEFT + PLOT_WIDTH * (1 - min(max(age, 0.0), span) / span)


def y_of(value: float, top: float) -> float:
    return TOP + PLOT_HEIGHT * (1 - min(max(value / top, 0.0), 1.0))


def segments(series: Series, span: float, gap: float) -> list[list[tuple[float, float]]]:
    """Runs of known values within the span, split where points are more than `gap` apart."""
    runs: list[list[tuple[float, float]]] = []
    previous_age: float | None = None
    for age, value in series:
        if age > span or value is None or not math.isfinite(value):
            previous_age = None
            continue
        if previous_age is None or previous_age - age > gap:
            runs.append([])
        runs[-1].append((age, value))
        previous_age = age
    return runs


def line_chart(
    series: Series,
    *,
    title: str,
    top: float,
    label: Callable[[float], str],
    span: float,
    gap: float,
) -> str:
    """`top` is the value at the top edge; `label` writes a value for the axis."""
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = y_of(top * fraction, top)
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
            f'stroke="#d0d7de" stroke-width="1"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="14" '
            f'fill="#57606a">{escape(label(top * fraction))}</text>'
        )
    minutes = round(span / 60)
    for fraction, text, anchor in (
        (0.0, f"{minutes} min ago", "start"),
        (0.5, f"{minutes // 2} min ago", "middle"),
        (1.0, "now", "end"),
    ):
        x = LEFT + PLOT_WIDTH * fraction
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - 5}" text-anchor="{anchor}" font-size="14" '
            f'fill="#57606a">{text}</text>'
        )
    runs = segments(series, span, gap)
    if not runs:
        parts.append(
            f'<text x="{LEFT + PLOT_WIDTH / 2:.1f}" y="{TOP + PLOT_HEIGHT / 2:.1f}" '
            f'text-anchor="middle" font-size="14" fill="#57606a">no data yet</text>'
        )
    for run in runs:
        coordinates = [(x_of(age, span), y_of(value, top)) for age, value in run]
        if len(coordinates) == 1:
            x, y = coordinates[0]
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#0969da"/>')
            continue
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in coordinates)
        base = TOP + PLOT_HEIGHT
        area = f"{coordinates[0][0]:.1f},{base} {points} {coordinates[-1][0]:.1f},{base}"
        parts.append(f'<polygon points="{area}" fill="#0969da" fill-opacity="0.12"/>')
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="#0969da" stroke-width="2" '
            f'stroke-linejoin="round"/>'
        )
    parts.append("</svg>")
    return "".join(parts)

"""Whether scanning still finds memory to merge, judged over full scans with hysteresis.

After every observed full scan the scan is classed `unprofitable` (general_profit at or
below 0), `backlog` (saved memory grew by more than 1% over the last 3 full scans) or
`steady` (it did not). The confirmed state changes only when the same new class was seen
after two scans in a row, so one noisy scan does not flip the advice back and forth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ksm_exporter.derive.scan_cost import FullScan

ScanClass = Literal["unprofitable", "backlog", "steady"]
SPAN = 3  # full scans over which saved memory must grow
GROWTH = 0.01  # more than this share of growth over SPAN scans is a backlog
CONFIRM = 2  # scans in a row that must agree before the state changes


@dataclass(frozen=True, slots=True)
class Trend:
    state: ScanClass | None = None  # None until SPAN full scans were observed
    candidate: ScanClass | None = None  # a different class seen on the latest scans
    streak: int = 0  # how many scans in a row saw `candidate`


def raw_state(scans: Sequence[FullScan]) -> ScanClass | None:
    """The class of the latest scan, None until one from SPAN full scans before is known."""
    if not scans:
        return None
    last = scans[-1]
    base = next((s for s in reversed(scans[:-1]) if s.full_scans <= last.full_scans - SPAN), None)
    if base is None or last.saved_pages is None or base.saved_pages is None:
        return None
    if last.general_profit is not None and last.general_profit <= 0:
        return "unprofitable"
    grew = last.saved_pages - base.saved_pages > GROWTH * base.saved_pages
    return "backlog" if grew else "steady"


def next_trend(trend: Trend, seen: ScanClass | None) -> Trend:
    if seen is None:
        return trend
    if trend.state is None or seen == trend.state:
        return Trend(seen)
    streak = trend.streak + 1 if seen == trend.candidate else 1
    if streak >= CONFIRM:
        return Trend(seen)
    return Trend(trend.state, seen, streak)

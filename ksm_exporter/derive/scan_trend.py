"""Whether scanning still finds memory to merge, judged over full scans with hysteresis.

After every observed full scan, `scan_cost.raw_state` classes the scan `unprofitable`
(ksm_memory_profit_bytes at or below 0), `backlog` (saved memory grew by more than 1% over the last
3 full scans) or `steady` (it did not). The confirmed state changes only when the same new
class was seen after two scans in a row, so one noisy scan does not flip the advice back and forth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ScanClass = Literal["unprofitable", "backlog", "steady"]
SPAN = 3  # full scans over which saved memory must grow
GROWTH = 0.01  # more than this share of growth over SPAN scans is a backlog
CONFIRM = 2  # scans in a row that must agree before the state changes


@dataclass(frozen=True, slots=True)
class Trend:
    state: ScanClass | None = None  # None until SPAN full scans were observed
    candidate: ScanClass | None = None  # a different class seen on the latest scans
    streak: int = 0  # how many scans in a row saw `candidate`


def next_trend(trend: Trend, seen: ScanClass | None) -> Trend:
    if seen is None:
        return trend
    if trend.state is None or seen == trend.state:
        return Trend(seen)
    streak = trend.streak + 1 if seen == trend.candidate else 1
    if streak >= CONFIRM:
        return Trend(seen)
    return Trend(trend.state, seen, streak)

"""The state file `ksm-exporter tune` keeps (tune/state_file.py writes it): which settings
it wrote, when, its latest change and decision, and whether and why it stopped. A restarted
tuner takes up from it; the exporter serves it as the `ksm_tuner_*` metrics.

Read as JSON; a file that does not parse, or a field of the wrong type, is no record at all
(None), never figures made up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ksm_exporter.sources.kernel_file import read_bytes

STATES = ("tuning", "stopped", "overridden", "failed")


@dataclass(frozen=True, slots=True)
class RecordedChange:
    setting: str
    before: int | None
    value: int
    reason: str
    at: float  # Unix time
    rule: str = "advice"  # which of the tuner's rules made it (derive/tuner_policy.py RULES)


@dataclass(frozen=True, slots=True)
class TunerRecord:
    pid: int
    state: str  # one of STATES
    updated_at: float  # Unix time of this record
    written: dict[str, int] = field(default_factory=dict)  # settings as the tuner last wrote
    written_at: dict[str, float] = field(default_factory=dict)  # Unix time of each write
    changes: int = 0  # changes written by this tuner, over its restarts
    last_change: RecordedChange | None = None
    last_decision_at: float | None = None
    stopped_reason: str | None = None
    registered: tuple[int, ...] = ()  # pids registered with KSM at its latest decision


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("not a number")
    return float(value)


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("not an integer")
    return int(value)


def _optional(value: Any, convert: Any) -> Any:
    return None if value is None else convert(value)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("not a string")
    return value


def parse_record(raw: bytes) -> TunerRecord | None:
    try:
        data = json.loads(raw)
        change = data.get("last_change")
        return TunerRecord(
            pid=_integer(data["pid"]),
            state=data["state"] if data["state"] in STATES else "failed",
            updated_at=_number(data["updated_at"]),
            written={_text(k): _integer(v) for k, v in data.get("written", {}).items()},
            written_at={_text(k): _number(v) for k, v in data.get("written_at", {}).items()},
            changes=_integer(data.get("changes", 0)),
            last_change=None
            if change is None
            else RecordedChange(
                _text(change["setting"]),
                _optional(change.get("before"), _integer),
                _integer(change["value"]),
                _text(change["reason"]),
                _number(change["at"]),
                _text(change.get("rule", "advice")),
            ),
            last_decision_at=_optional(data.get("last_decision_at"), _number),
            stopped_reason=_optional(data.get("stopped_reason"), _text),
            registered=tuple(_integer(pid) for pid in data.get("registered", [])),
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def read_record(path: str) -> TunerRecord | None:
    """None where there is no file, it cannot be read, or it does not parse. Never raises."""
    try:
        raw = read_bytes(path)
    except OSError:
        return None
    return None if raw is None else parse_record(raw)

"""How `status` writes figures for people: one formatter for each kind of figure, used by the
model's rows, so the terminal and the page write a figure the same way."""

from __future__ import annotations

from ksm_exporter.derive.tuning import Prediction
from ksm_exporter.sources.ksm_files import RUN_OFFLINE, run_setting

MIB = 1 << 20
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


def cpu_time(seconds: float) -> str:
    """Milliseconds below a second: a scan of 0.2 s may cost 4 ms of CPU."""
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1000:.1f} ms"


def seconds(value: float) -> str:
    return f"{value:,.2f} s" if value < 100 else f"{value:,.0f} s"


def micro(value: float) -> str:
    return f"{value * 1e6:.3f} µs"


def prediction(p: Prediction | None) -> str:
    if p is None:
        return "unknown"
    return f"{seconds(p.full_scan_seconds)} a full scan, {100 * p.cpu_ratio:.3g}% of a CPU"


def shorten(text: str, width: int) -> str:
    """Cut from the left: the end of a cgroup path is the part that names the workload."""
    return text if len(text) <= width else "..." + text[-(width - 3) :]

"""Whether the host is short of memory: where a saved page is worth more of ksmd's CPU, and
where nothing may re-inflate merged pages.

Short of memory: MemAvailable (the kernel's estimate of what can be allocated without
swapping, si_mem_available()) below LOW_AVAILABLE of MemTotal, or tasks stalled on memory
(PSI `some`, over the last 10 s) more than STALLED_PERCENT of the time. Either figure
missing counts as no sign of pressure from it.
"""

from __future__ import annotations

from ksm_exporter.sources.meminfo import Meminfo
from ksm_exporter.sources.memory_pressure import MemoryPressure

LOW_AVAILABLE = 0.1  # MemAvailable below a tenth of MemTotal
STALLED_PERCENT = 5.0  # some task stalled on memory 5% of the last 10 s


def short_of_memory(meminfo: Meminfo, pressure: MemoryPressure | None) -> str | None:
    """Why the host is short of memory, None where it is not (or nothing says so)."""
    total, available = meminfo.mem_total_bytes, meminfo.available_bytes
    if total and available is not None and available < LOW_AVAILABLE * total:
        return f"MemAvailable is {available / total:.1%} of MemTotal"
    if pressure is not None and pressure.some_avg10 > STALLED_PERCENT:
        return f"tasks stalled on memory {pressure.some_avg10:.1f}% of the last 10 s"
    return None

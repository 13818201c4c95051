"""What the tuners operators run today would set on this host now, for comparison.

ksmtuned (Fedora, RHEL) and oVirt MOM's KSM policy share one rule and its constants; KubeVirt's
node handler applies the same rule every 3 minutes instead of every 60 s. Every interval:
stop KSM when the memory committed to QEMU plus a threshold fits in RAM and free memory is
above the threshold; else add 300 to pages_to_scan when free memory is below the threshold,
take 50 off when it is above, clamped to 64-1250; sleep 10 ms, scaled up on hosts with less
than 16 GiB. Neither looks at what scanning costs or finds.

The kernel's scan-time advisor (advisor_mode: in 6.12, not in 6.1) rewrites pages_to_scan at
the end of every full scan (`scan_time_advisor()` in mm/ksm.c): towards its target full-scan
time, then per_page_cost = pages_to_scan / cpu%, capped at per_page_cost * advisor_max_cpu,
raised to at least per_page_cost * KSM_ADVISOR_MIN_CPU (10, fixed), capped last at
advisor_max_pages_to_scan. advisor_min_pages_to_scan is only the starting value
(`set_advisor_defaults()`), not a floor. The kernel counts the scan time in whole seconds (at
least 1) and the CPU in whole percent (at least 1) of that: so it never settles below about
10% of a CPU unless advisor_max_pages_to_scan caps it, and where a full scan takes under a
second it takes the CPU of one scan for the CPU of a second and settles far above. Where it
settles is found here by running that arithmetic on the measured model, scan after scan.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ksm_exporter.derive.tuning import Model, Prediction
from ksm_exporter.sources.kernel_file import KIB

KSMTUNED_BOOST = 300
KSMTUNED_DECAY = -50
KSMTUNED_MIN_PAGES = 64
KSMTUNED_MAX_PAGES = 1250
KSMTUNED_SLEEP_MILLISECS = 10  # on a host with 16 GiB; scaled by 16 GiB / MemTotal, never less
KSMTUNED_THRESHOLD_PERCENT = 20  # of MemTotal
KSMTUNED_THRESHOLD_MIN_KIB = 2048
KSMTUNED_INTERVAL_SECONDS = 60

ADVISOR_TARGET_SCAN_TIME = 200
ADVISOR_MAX_CPU_PERCENT = 70
ADVISOR_MIN_PAGES = 500  # its starting pages_to_scan
ADVISOR_MAX_PAGES = 30000
ADVISOR_MIN_CPU_PERCENT = 10  # KSM_ADVISOR_MIN_CPU, not a setting
ADVISOR_EWMA_WEIGHT = 30  # EWMA_WEIGHT: percent of the newest change
ADVISOR_SCANS = 200  # full scans simulated: far past where it settles
ADVISOR_SETTLED = 40  # the last ones, over which the settled figures are averaged


@dataclass(frozen=True, slots=True)
class Memory:
    total_bytes: int
    free_bytes: int  # MemFree + Buffers + Cached, as ksmtuned counts it
    committed_bytes: int  # resident memory of QEMU processes


@dataclass(frozen=True, slots=True)
class KsmtunedChoice:
    run: int
    pages_to_scan: int | None  # None when it stops KSM
    sleep_millisecs: int | None
    reason: str
    predicted: Prediction | None = None


def ksmtuned(
    memory: Memory, pages_to_scan: int, model: Model | None, sleep_now: int | None
) -> KsmtunedChoice:
    """One ksmtuned/MOM step from the current pages_to_scan, as if it had set that itself."""
    total_kib = memory.total_bytes // KIB
    free_kib = memory.free_bytes // KIB
    committed_kib = memory.committed_bytes // KIB
    threshold = max(total_kib * KSMTUNED_THRESHOLD_PERCENT // 100, KSMTUNED_THRESHOLD_MIN_KIB)
    if committed_kib + threshold < total_kib and free_kib > threshold:
        return KsmtunedChoice(
            0,
            None,
            None,
            "QEMU's memory plus the threshold fits in RAM and free memory is above it",
        )
    sleep = max(KSMTUNED_SLEEP_MILLISECS, KSMTUNED_SLEEP_MILLISECS * 16 * KIB * KIB // total_kib)
    if free_kib < threshold:
        step, reason = KSMTUNED_BOOST, "free memory below the threshold: boost"
    else:
        step, reason = KSMTUNED_DECAY, "free memory above the threshold: decay"
    pages = min(KSMTUNED_MAX_PAGES, max(KSMTUNED_MIN_PAGES, pages_to_scan + step))
    predicted = None
    if model is not None and sleep_now is not None:
        predicted = at_sleep(model, sleep_now, sleep).predict(pages)
    return KsmtunedChoice(1, pages, sleep, reason, predicted)


def at_sleep(model: Model, sleep_now: int, sleep: int) -> Model:
    """The model with another sleep_millisecs: the measured sleep moved by the difference."""
    return replace(model, s=max(0.0, model.s + (sleep - sleep_now) / 1000))


@dataclass(frozen=True, slots=True)
class AdvisorChoice:
    target_scan_time: int
    max_cpu_percent: int
    pages_to_scan: int  # where it settles: the mean over the settled scans, by time
    predicted: Prediction  # over the settled scans
    floor_binds: bool  # KSM_ADVISOR_MIN_CPU, not the target, sets the pace


@dataclass(frozen=True, slots=True)
class AdvisorLimits:
    target_scan_time: int = ADVISOR_TARGET_SCAN_TIME
    max_cpu_percent: int = ADVISOR_MAX_CPU_PERCENT
    max_pages: int = ADVISOR_MAX_PAGES


@dataclass(frozen=True, slots=True)
class AdvisorStep:
    pages: int
    change: int  # the EWMA of scan_time * 100 / previous scan_time
    scan_time: int  # whole seconds, at least 1
    floor_binds: bool


def advisor_step(
    pages_now: int,
    seconds: float,
    cpu_seconds: float,
    change: int,
    last: int,
    *,
    limits: AdvisorLimits,
) -> AdvisorStep:
    """One call of `scan_time_advisor()` after a full scan of `seconds` that cost
    `cpu_seconds` of ksmd CPU, in the kernel's integer arithmetic."""
    scan_time = max(1, int(seconds * 1000) // 1000)
    cpu_ms = int(cpu_seconds * 1e9) // 1_000_000
    cpu_percent = max(1, cpu_ms * 100 // (scan_time * 1000))
    last_scan_time = last or scan_time
    factor = max(1, limits.target_scan_time * 100 // scan_time)
    new_change = max(1, scan_time * 100 // last_scan_time)
    change = ((100 - ADVISOR_EWMA_WEIGHT) * change + ADVISOR_EWMA_WEIGHT * new_change) // 100
    pages = pages_now * 100 // factor
    pages = pages * change // 100
    per_page_cost = max(1, pages_now // cpu_percent)
    pages = min(pages, per_page_cost * limits.max_cpu_percent)
    floor = per_page_cost * ADVISOR_MIN_CPU_PERCENT
    floor_binds = floor > pages
    pages = max(pages, floor)
    pages = min(pages, limits.max_pages)
    return AdvisorStep(max(1, pages), change, scan_time, floor_binds and pages == floor)


def kernel_advisor(
    model: Model,
    target_scan_time: int | None = None,
    max_cpu_percent: int | None = None,
    min_pages: int | None = None,
    max_pages: int | None = None,
) -> AdvisorChoice:
    """Where the scan-time advisor settles on this host: `scan_time_advisor()` run scan after
    scan on the model's full-scan time and CPU, from its starting value (the kernel's
    settings where it has them, else its defaults); the figures are those of the last
    ADVISOR_SETTLED scans, since it may keep stepping between a few values."""
    limits = AdvisorLimits(
        target_scan_time or ADVISOR_TARGET_SCAN_TIME,
        max_cpu_percent or ADVISOR_MAX_CPU_PERCENT,
        max_pages or ADVISOR_MAX_PAGES,
    )
    pages, change, last = min_pages or ADVISOR_MIN_PAGES, 0, 0
    settled: list[tuple[int, float, float, bool]] = []
    for scan in range(ADVISOR_SCANS):
        seconds, cpu = model.full_scan_seconds(pages), model.cpu_seconds(pages)
        if scan >= ADVISOR_SCANS - ADVISOR_SETTLED:
            settled.append((pages, seconds, cpu, False))
        step = advisor_step(pages, seconds, cpu, change, last, limits=limits)
        if settled:
            settled[-1] = (*settled[-1][:3], step.floor_binds)
        pages, change, last = step.pages, step.change, step.scan_time
    total = sum(seconds for _, seconds, _, _ in settled)
    mean_pages = sum(p * seconds for p, seconds, _, _ in settled) / total
    cpu_ratio = sum(cpu for _, _, cpu, _ in settled) / total
    floor = sum(binds for *_, binds in settled) * 2 > len(settled)
    return AdvisorChoice(
        limits.target_scan_time,
        limits.max_cpu_percent,
        round(mean_pages),
        Prediction(total / len(settled), cpu_ratio),
        floor,
    )

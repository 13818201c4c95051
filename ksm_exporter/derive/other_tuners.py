"""What the tuners operators run today would set on this host now, for comparison.

ksmtuned (Fedora, RHEL) and oVirt MOM's KSM policy share one rule and its constants; KubeVirt's
node handler applies the same rule every 3 minutes instead of every 60 s. Every interval:
stop KSM when the memory committed to QEMU plus a threshold fits in RAM and free memory is
above the threshold; else add 300 to pages_to_scan when free memory is below the threshold,
take 50 off when it is above, clamped to 64-1250; sleep 10 ms, scaled up on hosts with less
than 16 GiB. Neither looks at what scanning costs or finds.

The kernel's scan-time advisor (advisor_mode: in 6.12, not in 6.1) steers pages_to_scan
after every full scan towards a target full-scan time (default 200 s) under a CPU ceiling
(default 70%), within its minimum and maximum pages_to_scan: where it settles is computed
here with the measured model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ksm_exporter.derive.tuning import Model, Prediction, within_budget
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
ADVISOR_MIN_PAGES = 500
ADVISOR_MAX_PAGES = 30000


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
    pages_to_scan: int
    predicted: Prediction


def kernel_advisor(
    model: Model,
    target_scan_time: int | None = None,
    max_cpu_percent: int | None = None,
    min_pages: int | None = None,
    max_pages: int | None = None,
) -> AdvisorChoice:
    """Where the scan-time advisor settles: the pages_to_scan that gives its target full-scan
    time, lowered to its CPU ceiling, within its page limits (the kernel's settings where it
    has them, else its defaults)."""
    target = target_scan_time or ADVISOR_TARGET_SCAN_TIME
    ceiling = max_cpu_percent or ADVISOR_MAX_CPU_PERCENT
    pages = min(model.pages_for_time(target), within_budget(model, ceiling / 100))
    pages = min(max_pages or ADVISOR_MAX_PAGES, max(min_pages or ADVISOR_MIN_PAGES, pages))
    return AdvisorChoice(target, ceiling, pages, model.predict(pages))

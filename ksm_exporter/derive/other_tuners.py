"""What the tuners operators run today would set on this host now, for comparison.

Three rules, each modelled from its own source, one step as the tuner would take it now:

- ksmtuned (Debian's /usr/sbin/ksmtuned, `adjust()`; Fedora's differs only in how it finds
  QEMU): every 60 s, stop KSM when the resident memory of `qemu-system...-enable-kvm`
  processes plus a threshold (20% of MemTotal, at least 2,048 KiB) is under MemTotal and
  free memory (MemFree + Buffers + Cached) is over the threshold; else add 300 to its own
  count of pages while free memory is below the threshold, take 50 off while it is not,
  within 64-1250, and sleep 10 ms scaled by 16 GiB / MemTotal, never under 10 ms. Its count
  starts at 0 and is its own: it never reads pages_to_scan back.
- oVirt MOM (doc/ksm.rules, the policy it ships, over mom/Collectors/HostKSM.py and
  HostMemory.py): the same constants, but the threshold is 20% of MemTotal with no floor,
  QEMU's memory is its virtual size (`ps -o vsz` of `pgrep qemu`), free memory is averaged
  over its last 10 samples, the sleep 10 ms x 16 GiB / MemTotal has no floor, and the step
  starts from the kernel's current pages_to_scan.
- KubeVirt's node handler (pkg/virt-handler/ksm/ksm.go, `calculateNewRunSleepAndPages()`),
  every 3 minutes on the nodes its KSM configuration selects: pressure when MemAvailable is
  at most 20% of MemTotal; under pressure a stopped KSM starts at 100 pages, a running one
  gets 300 more (at most 1,250); without pressure a running KSM loses 50 and stops below 64,
  a stopped one stays stopped; the sleep is 100 ms x 16 GiB / (MemTotal - MemAvailable),
  never under 10 ms.

None of them looks at what scanning costs or finds. An input a rule needs that cannot be
read leaves its choice unknown, with the inputs named; never computed as 0.

The kernel's scan-time advisor (advisor_mode, since 6.8) rewrites
pages_to_scan at the end of every full scan (`scan_time_advisor()` in mm/ksm.c): towards its
target full-scan time, then per_page_cost = pages_to_scan / cpu%, capped at per_page_cost *
advisor_max_cpu, raised to at least per_page_cost * KSM_ADVISOR_MIN_CPU (10, fixed), capped last
at advisor_max_pages_to_scan. advisor_min_pages_to_scan is only the starting value
(`set_advisor_defaults()`), not a floor. The kernel counts the scan time in whole seconds (at
least 1) and the CPU in whole percent (at least 1) of that: so it never settles below about 10%
of a CPU unless advisor_max_pages_to_scan caps it, and where a full scan takes under a second it
takes the CPU of one scan for the CPU of a second and settles far above. Where it settles is
found here by running that arithmetic on the measured model, scan after scan."""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

from ksm_exporter.derive.tuning import Model, Prediction
from ksm_exporter.sources.host_memory import QemuProcess
from ksm_exporter.sources.kernel_file import KIB
from ksm_exporter.sources.ksm_files import RUN_RUNNING

SIXTEEN_GIB_KIB = 16 * 1024 * 1024  # the host size the three rules' sleeps are scaled from

# ksmtuned (/usr/sbin/ksmtuned): KSM_NPAGES_BOOST, _DECAY, _MIN, _MAX, KSM_SLEEP_MSEC,
# KSM_THRES_COEF, KSM_THRES_CONST, KSM_MONITOR_INTERVAL; its sleep floor is a literal 10.
KSMTUNED_BOOST = 300
KSMTUNED_DECAY = -50
KSMTUNED_MIN_PAGES = 64
KSMTUNED_MAX_PAGES = 1250
KSMTUNED_SLEEP_MILLISECS = 10
KSMTUNED_SLEEP_FLOOR = 10
KSMTUNED_THRESHOLD_PERCENT = 20
KSMTUNED_THRESHOLD_MIN_KIB = 2048
KSMTUNED_INTERVAL_SECONDS = 60
# committed_memory(): `pgrep -f` on the whole command line
KSMTUNED_QEMU = re.compile(r"^qemu-system.*-enable-kvm")

# oVirt MOM (doc/ksm.rules): ksm_pages_boost, ksm_pages_decay, ksm_npages_min, ksm_npages_max,
# ksm_sleep_ms_baseline, ksm_free_percent; mom/__init__.py: policy-engine-interval
MOM_BOOST = 300
MOM_DECAY = -50
MOM_MIN_PAGES = 64
MOM_MAX_PAGES = 1250
MOM_SLEEP_MS_BASELINE = 10
MOM_FREE_PERCENT = 0.20
MOM_INTERVAL_SECONDS = 10

# KubeVirt (pkg/virt-handler/ksm/ksm.go): pagesBoostDefault, pagesDecayDefault,
# nPagesMinDefault, nPagesMaxDefault, nPagesInitDefault, sleepMsBaselineDefault,
# freePercentDefault, ksmLoopIntervalMinutes; each but the interval may be overridden by a
# node annotation (kubevirt.io/ksm-*-override), which is not seen from the node.
KUBEVIRT_BOOST = 300
KUBEVIRT_DECAY = -50
KUBEVIRT_MIN_PAGES = 64
KUBEVIRT_MAX_PAGES = 1250
KUBEVIRT_INIT_PAGES = 100
KUBEVIRT_SLEEP_MS_BASELINE = 100
KUBEVIRT_FREE_PERCENT = 0.2  # a float32 in Go
KUBEVIRT_INTERVAL_SECONDS = 180

ADVISOR_TARGET_SCAN_TIME = 200
ADVISOR_MAX_CPU_PERCENT = 70
ADVISOR_MIN_PAGES = 500  # its starting pages_to_scan
ADVISOR_MAX_PAGES = 30000
ADVISOR_MIN_CPU_PERCENT = 10  # KSM_ADVISOR_MIN_CPU, not a setting
ADVISOR_EWMA_WEIGHT = 30  # EWMA_WEIGHT: percent of the newest change
ADVISOR_SCANS = 200  # full scans simulated: far past where it settles
ADVISOR_SETTLED = 40  # the last ones, over which the settled figures are averaged


@dataclass(frozen=True, slots=True)
class HostMemory:
    """What the rules read of the host's memory; None where it could not be read."""

    total_bytes: int | None
    free_bytes: int | None  # MemFree + Buffers + Cached
    available_bytes: int | None  # MemAvailable
    qemu: tuple[QemuProcess, ...] | None  # processes named like QEMU


@dataclass(frozen=True, slots=True)
class RivalInputs:
    memory: HostMemory
    run: int | None
    pages_to_scan: int | None
    sleep_millisecs: int | None
    model: Model | None = None


@dataclass(frozen=True, slots=True)
class TunerChoice:
    """What a tuner would write now; run None where an input it needs is unknown."""

    run: int | None
    pages_to_scan: int | None  # None where it writes none (it stops KSM)
    sleep_millisecs: int | None
    reason: str
    predicted: Prediction | None = None
    unknown: tuple[str, ...] = ()  # the inputs it needs that could not be read
    committed_bytes: int | None = None  # QEMU's memory as it counts it
    threshold_bytes: float | None = None  # the free memory under which it boosts


def unknown(names: tuple[str, ...]) -> TunerChoice:
    return TunerChoice(None, None, None, "unknown: " + ", ".join(names), unknown=names)


def missing(inputs: RivalInputs, needs: tuple[str, ...]) -> tuple[str, ...]:
    memory = inputs.memory
    have = {
        "MemTotal": memory.total_bytes,
        "MemFree + Buffers + Cached": memory.free_bytes,
        "MemAvailable": memory.available_bytes,
        "QEMU processes": memory.qemu,
        "pages_to_scan": inputs.pages_to_scan,
        "run": inputs.run,
    }
    return tuple(name for name in needs if have[name] is None)


@dataclass(frozen=True, slots=True)
class Counted:
    """What a rule counted, for the choice to show."""

    committed_bytes: int | None = None
    threshold_bytes: float | None = None

    def stop(self, reason: str) -> TunerChoice:
        return TunerChoice(
            0,
            None,
            None,
            reason,
            committed_bytes=self.committed_bytes,
            threshold_bytes=self.threshold_bytes,
        )

    def start(self, inputs: RivalInputs, pages: int, sleep: int, reason: str) -> TunerChoice:
        """run=1 at `pages` and `sleep`, with what ksmd would then do where it is measured."""
        predicted = None
        if inputs.model is not None and inputs.sleep_millisecs is not None:
            predicted = inputs.model.at_sleep(sleep).predict(pages)
        return TunerChoice(
            1,
            pages,
            sleep,
            reason,
            predicted,
            committed_bytes=self.committed_bytes,
            threshold_bytes=self.threshold_bytes,
        )


def ksmtuned(inputs: RivalInputs) -> TunerChoice:
    """One `adjust()` of Debian's /usr/sbin/ksmtuned, in its shell's integer KiB arithmetic.

    Its count of pages (npages) is its own: it never reads pages_to_scan back. It is modelled
    only where it runs, and a ksmtuned that runs last wrote the current pages_to_scan."""
    needs = ("MemTotal", "MemFree + Buffers + Cached", "QEMU processes", "pages_to_scan")
    memory = inputs.memory
    lacking = missing(inputs, needs)
    if lacking or memory.total_bytes is None or memory.free_bytes is None or memory.qemu is None:
        return unknown(lacking)
    total, free = memory.total_bytes // KIB, memory.free_bytes // KIB
    resident = sum(p.resident_bytes for p in memory.qemu if KSMTUNED_QEMU.match(p.command_line))
    committed = resident // KIB  # ps -o rsz=, in KiB
    threshold = max(total * KSMTUNED_THRESHOLD_PERCENT // 100, KSMTUNED_THRESHOLD_MIN_KIB)
    counted = Counted(committed * KIB, threshold * KIB)
    if committed + threshold < total and free > threshold:
        return counted.stop(
            "QEMU's resident memory plus the threshold fits in RAM and free memory is above it"
        )
    sleep = max(KSMTUNED_SLEEP_MILLISECS * SIXTEEN_GIB_KIB // total, KSMTUNED_SLEEP_FLOOR)
    npages = inputs.pages_to_scan
    if free < threshold:
        step, reason = KSMTUNED_BOOST, "free memory below the threshold: boost"
    else:
        step, reason = KSMTUNED_DECAY, "free memory not below the threshold: decay"
    pages = min(KSMTUNED_MAX_PAGES, max(KSMTUNED_MIN_PAGES, (npages or 0) + step))
    return counted.start(inputs, pages, sleep, f"{reason}, from the pages it last wrote")


def mom(inputs: RivalInputs) -> TunerChoice:
    """One evaluation of MOM's doc/ksm.rules, in its Python arithmetic on KiB figures: the
    threshold is a float, the sleep is truncated by the KSM controller's int().

    MOM averages free memory over its last 10 samples, 5 s apart (Entity.StatAvg()); here
    one reading stands for the average."""
    needs = ("MemTotal", "MemFree + Buffers + Cached", "QEMU processes", "pages_to_scan")
    memory, now = inputs.memory, inputs.pages_to_scan
    lacking = missing(inputs, needs)
    if lacking or memory.total_bytes is None or memory.free_bytes is None:
        return unknown(lacking)
    if memory.qemu is None or now is None:
        return unknown(lacking)
    total, free = memory.total_bytes // KIB, memory.free_bytes // KIB
    committed = sum(p.virtual_bytes for p in memory.qemu) // KIB  # `pgrep qemu`: every one
    threshold = total * MOM_FREE_PERCENT
    counted = Counted(committed * KIB, threshold * KIB)
    if threshold + committed < total and free > threshold:
        return counted.stop(
            "QEMU's virtual size plus the threshold fits in RAM and free memory is above it"
        )
    sleep = int(MOM_SLEEP_MS_BASELINE * SIXTEEN_GIB_KIB / total)
    if free < threshold:
        step, reason = MOM_BOOST, "free memory below the threshold: boost"
    else:
        step, reason = MOM_DECAY, "free memory not below the threshold: decay"
    pages = max(MOM_MIN_PAGES, min(MOM_MAX_PAGES, now + step))
    return counted.start(inputs, pages, sleep, f"{reason}, from pages_to_scan")


def float32(value: float) -> float:
    """`value` rounded to the nearest float32, as Go's float32() does."""
    rounded: float = struct.unpack("f", struct.pack("f", value))[0]
    return rounded


def kubevirt(inputs: RivalInputs) -> TunerChoice:  # noqa: PLR0911 (one return a branch of Go's)
    """One `calculateNewRunSleepAndPages()` of KubeVirt's handler with the defaults (no
    override annotations), on a node its KSM configuration selects: Go's uint64 arithmetic
    for the sleep, float32 for the pressure test."""
    memory, pages = inputs.memory, inputs.pages_to_scan
    lacking = missing(inputs, ("MemTotal", "MemAvailable", "pages_to_scan", "run"))
    if lacking or memory.total_bytes is None or memory.available_bytes is None or pages is None:
        return unknown(lacking)
    total, available = memory.total_bytes // KIB, memory.available_bytes // KIB
    # loadKSM() compares the run file's text with "1": with KSM_RUN_OFFLINE added it reads
    # KSM as off, and so does this model of it.
    running = inputs.run == RUN_RUNNING
    threshold = float32(float32(total) * float32(KUBEVIRT_FREE_PERCENT))
    counted = Counted(threshold_bytes=threshold * KIB)
    used = (total - available) % 2**64
    if used == 0:  # Go's integer division by zero panics: the handler dies
        return TunerChoice(None, None, None, "MemAvailable equals MemTotal: it divides by 0")
    sleep = KUBEVIRT_SLEEP_MS_BASELINE * SIXTEEN_GIB_KIB // used
    sleep = max(sleep, KUBEVIRT_SLEEP_MS_BASELINE // 10)
    if float32(available) > threshold:
        if not running:
            return counted.stop("no pressure, KSM stopped: it stays stopped")
        pages += KUBEVIRT_DECAY
        if pages < KUBEVIRT_MIN_PAGES:
            return counted.stop("no pressure: decayed below the minimum, it stops")
        return counted.start(inputs, pages, sleep, "no pressure: decay")
    if not running:
        return counted.start(inputs, KUBEVIRT_INIT_PAGES, sleep, "pressure: it starts")
    pages = min(pages + KUBEVIRT_BOOST, KUBEVIRT_MAX_PAGES)
    return counted.start(inputs, pages, sleep, "pressure: boost")


@dataclass(frozen=True, slots=True)
class Rival:
    """One other tuner: its key under `advice.others`, its name, its rule, how often it
    applies it."""

    key: str
    name: str
    rule: Callable[[RivalInputs], TunerChoice]
    interval_seconds: int


RIVALS = (
    Rival("ksmtuned", "ksmtuned", ksmtuned, KSMTUNED_INTERVAL_SECONDS),
    Rival("mom", "oVirt MOM", mom, MOM_INTERVAL_SECONDS),
    Rival("kubevirt", "KubeVirt", kubevirt, KUBEVIRT_INTERVAL_SECONDS),
)


# The name sources/rival_tuners.py gives a running tuner -> its rule's key in RIVALS.
RULE_OF = {
    "ksmtuned": "ksmtuned",
    "oVirt MOM (momd)": "mom",
    "KubeVirt's virt-handler": "kubevirt",
}


def rival_choices(inputs: RivalInputs) -> dict[str, TunerChoice]:
    return {rival.key: rival.rule(inputs) for rival in RIVALS}


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

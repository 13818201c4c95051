"""Closed loop on this machine's KSM: the exporter's advice, applied, does what it predicted;
and status says where the kernel's own advisor settles.

The exporter only reads; the test writes pages_to_scan as an operator would. A child holds
identical pages, merged before the exporter starts, so the exporter sees a steady host. With
`--tuning.steady-full-scan-seconds` at 0.1 s, below what the budget allows, the CPU budget
is what sets the pace: scans of a few wake-ups, the regime where whole jiffies count. The
exporter recommends from one setting (no cost per wake-up known yet); once it has seen the
recommended setting and refitted, its second recommendation is applied, and what it
predicted for that setting is compared with what ksmd then does, measured here from
`full_scans`, `pages_scanned` and ksmd's own schedstat (CPU time and time waiting for a
CPU), over whole smart_scan cycles.

Other programs share this machine's two CPUs: the time ksmd waits for one lengthens each
wake-up's work past jiffies. So the model is judged twice: by its own inputs (the cost per
page, pages a scan and wait for a CPU measured over the same window, with the kernel's HZ
read here from its configuration) always, and by the prediction the exporter made before the
change, where the wait for a CPU stayed within reach of what the exporter measured.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.eventually import eventually
from harness.exporter_process import RunningExporter, running_exporter
from harness.real_ksm import KSM, KsmControl, ksm_control, merging_child, read_ksm
from ksm_exporter.derive.tuning import Model
from ksm_exporter.sources.kernel_history import since
from ksm_exporter.sources.ksmd import find_ksmd

pytestmark = pytest.mark.realksm

FIRST_PAGES_TO_SCAN = 300  # far below the answer, and a full scan of a few seconds
SLEEP_MILLISECS = 20
TOLERANCE = 0.25
MEASURED_SCANS = 18  # two smart_scan cycles
COMPARABLE_LOAD = 0.5  # seconds of waiting per CPU-second: how far the load may move


def kernel_hz() -> int:
    """CONFIG_HZ of the running kernel, from its configuration; skips where it is unreadable."""
    release = Path("/proc/sys/kernel/osrelease").read_text().strip()
    for path in (Path("/proc/config.gz"), Path(f"/boot/config-{release}")):
        if path.exists():
            text = path.read_bytes()
            config = gzip.decompress(text) if path.suffix == ".gz" else text
            for line in config.decode().splitlines():
                if line.startswith("CONFIG_HZ="):
                    return int(line.split("=")[1])
    pytest.skip("the kernel's configuration is not readable here: HZ unknown")


@dataclass(frozen=True)
class Recommendation:
    pages_to_scan: int
    full_scan_seconds: float  # predicted at pages_to_scan
    cpu_ratio: float
    model: dict[str, Any]


@dataclass(frozen=True)
class Measured:
    full_scan_seconds: float
    cpu_ratio: float
    pages: float  # pages_scanned per full scan
    cpu_per_page: float
    run_delay: float  # seconds waiting for a CPU per CPU-second


def recommendation(exporter: RunningExporter) -> Recommendation | None:
    advice = json.loads(exporter.get("/api/status"))["advice"]
    predicted = advice["predicted"]["recommended"]
    pages = advice["recommended"]["pages_to_scan"]
    if predicted is None or pages is None:
        return None
    return Recommendation(
        pages, predicted["full_scan_seconds"], predicted["ksmd_cpu_ratio"], advice["model"]
    )


def ksmd_schedstat(pid: int) -> tuple[int, int]:
    """Time on a CPU and time waiting on a run queue, ns (fs/proc/base.c)."""
    with open(f"/proc/{pid}/schedstat") as f:
        fields = f.read().split()
    return int(fields[0]), int(fields[1])


def completion_after(count: int, timeout: float) -> int:
    """Waits for full_scans to pass `count`, returning the new count as soon as it does."""

    def grown() -> int | None:
        now = read_ksm("full_scans")
        return now if now > count else None

    return eventually(grown, timeout, interval=0.002, what=f"full_scans above {count}")


def measure(ksmd: int, scans: int, timeout: float, seconds: float = 0.0) -> Measured:
    """Over at least `scans` full scans and `seconds`, from one completion to another: the
    full-scan time, ksmd's share of a CPU, pages a scan, CPU a page and the wait for a CPU,
    from its own counters."""
    first = completion_after(read_ksm("full_scans"), timeout)
    started, (cpu, delay), pages = time.monotonic(), ksmd_schedstat(ksmd), read_ksm("pages_scanned")
    last = completion_after(first + scans - 1, timeout)
    while time.monotonic() - started < seconds:
        last = completion_after(last, timeout)
    seconds = time.monotonic() - started
    cpu_end, delay_end = ksmd_schedstat(ksmd)
    scanned = read_ksm("pages_scanned") - pages
    count = last - first
    spent = (cpu_end - cpu) / 1e9
    return Measured(
        seconds / count,
        spent / seconds,
        scanned / count,
        spent / scanned,
        (delay_end - delay) / 1e9 / spent,
    )


def closed_loop(ksm: KsmControl, budget: float, steady: float) -> tuple[Recommendation, int]:
    """The exporter's second recommendation, refitted at its first; and full_scans then."""
    ksm.set(pages_to_scan=FIRST_PAGES_TO_SCAN)
    with running_exporter(
        "--collector.sample-interval=0.1",
        "--no-collector.process",
        f"--tuning.cpu-budget={budget}",
        f"--tuning.steady-full-scan-seconds={steady}",
    ) as exporter:
        first = eventually(lambda: recommendation(exporter), 240, 0.5, "a first recommendation")
        ksm.set(pages_to_scan=first.pages_to_scan)
        applied_at = read_ksm("full_scans")

        def refitted() -> Recommendation | None:
            seen = read_ksm("full_scans") >= applied_at + MEASURED_SCANS + 2
            again = recommendation(exporter)
            two = again is not None and again.model["pages_to_scan_values_seen"] > 1
            return again if seen and two else None

        second = eventually(refitted, 240, 0.5, "a recommendation refitted at the new setting")
    return second, first.pages_to_scan


@pytest.mark.parametrize(
    ("megabytes", "budget"),
    [
        (96, 0.05),  # the held-out regime: 4-5 wake-ups a full scan of 0.1 s
        (256, 0.02),
    ],
)
def test_recommendation_applied_gives_what_was_predicted(megabytes: int, budget: float) -> None:
    ksmd = find_ksmd("/proc")
    hz = kernel_hz()
    size = megabytes << 20
    with ksm_control() as ksm, merging_child(size) as child:
        if ksmd is None:
            pytest.fail("KSM is writable but no ksmd thread is in sight")
        advisor = Path(KSM, "advisor_mode")
        if advisor.exists() and "[scan-time]" in advisor.read_text():
            pytest.skip("the kernel's advisor sets pages_to_scan on this host")
        ksm.set(pages_to_scan=5000, sleep_millisecs=SLEEP_MILLISECS, run=1)
        child.wait_merged(size // 4096 * 9 // 10, timeout=120)
        predicted, first_pages = closed_loop(ksm, budget, 0.1)
        ksm.set(pages_to_scan=predicted.pages_to_scan)
        completion_after(read_ksm("full_scans") + 2, 60)  # settled: whole scans at the setting
        measured = measure(ksmd, MEASURED_SCANS, 60)
    # The model by its own inputs: what the window measured, with the kernel's HZ.
    own = Model(
        c=measured.cpu_per_page,
        b=0.0,
        n=measured.pages,
        n_source="pages_scanned",
        settings_seen=1,
        sleep_millisecs=SLEEP_MILLISECS,
        hz=hz,
        run_delay=measured.run_delay,
    ).predict(predicted.pages_to_scan)
    load_then = predicted.model["run_delay_seconds_per_cpu_second"]
    pages_then = predicted.model["pages_per_full_scan"]
    print(
        f"{megabytes} MiB, budget {budget}: recommended pages_to_scan {first_pages} then "
        f"{predicted.pages_to_scan}; predicted {predicted.full_scan_seconds:.3f} s a full scan "
        f"at {predicted.cpu_ratio:.2%} of a CPU (waiting {load_then:.2f} s a CPU-second), "
        f"by its own inputs {own.full_scan_seconds:.3f} s at {own.cpu_ratio:.2%}; measured "
        f"{measured.full_scan_seconds:.3f} s at {measured.cpu_ratio:.2%} (waiting "
        f"{measured.run_delay:.2f} s a CPU-second, {measured.pages:.0f} pages a scan)"
    )
    assert within(own.full_scan_seconds, measured.full_scan_seconds), (own, measured)
    assert within(own.cpu_ratio, measured.cpu_ratio), (own, measured)
    # The exporter's own prediction, where the host is as it saw it: as loaded, and no other
    # memory registered or gone meanwhile (lab guests come and go on a shared machine).
    if (
        abs(measured.run_delay - load_then) <= COMPARABLE_LOAD
        and abs(measured.pages - pages_then) <= 0.1 * pages_then
    ):
        assert within(predicted.full_scan_seconds, measured.full_scan_seconds), (
            predicted,
            measured,
        )
        assert within(predicted.cpu_ratio, measured.cpu_ratio), (predicted, measured)


def within(predicted: float, measured: float) -> bool:
    return abs(predicted - measured) <= TOLERANCE * measured


def status(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ksm_exporter", "status", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_status_advises_on_real_ksm() -> None:
    """`status` on this host with KSM running: a state, a measured cost, the line to run.
    Other registered memory on the host lengthens the full scans: the window allows for it."""
    with ksm_control() as ksm, merging_child(16 << 20) as child:
        advisor = Path(KSM, "advisor_mode")
        if advisor.exists() and "[scan-time]" in advisor.read_text():
            pytest.skip("the kernel's advisor sets pages_to_scan on this host")
        ksm.set(pages_to_scan=2000, sleep_millisecs=10, run=1)
        child.wait_merged(2000)
        result = status("--json", "--window", "15")
        text = status("--window", "1").stdout
    assert (result.returncode, result.stderr) == (0, "")
    advice = json.loads(result.stdout)["advice"]
    assert advice["state"] in ("backlog", "steady"), advice
    assert advice["model"]["ksmd_cpu_seconds_per_page"] > 0
    pages = advice["recommended"]["pages_to_scan"]
    assert advice["recommended"]["commands"] == [f"echo {pages} > {KSM}/pages_to_scan"]
    assert advice["predicted"]["current"]["ksmd_cpu_ratio"] > 0
    assert advice["others"]["kernel_advisor"]["pages_to_scan"] >= 1
    assert any(line.startswith("Advice         ") for line in text.splitlines()), text


ADVISOR_CHILD_BYTES = 128 << 20
ADVISOR_SETTLED_SCANS = 5  # pages_to_scan unchanged over this many full scans: settled
ADVISOR_MEASURED_SCANS = 40
STATUS_WINDOW = 15


@contextlib.contextmanager
def status_in_background(*args: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "ksm_exporter", "status", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        process.kill()
        process.wait()


def advisor_settled(ksm_pages: list[int]) -> int | None:
    """The advisor's pages_to_scan once it held over the last ADVISOR_SETTLED_SCANS scans."""
    last = ksm_pages[-ADVISOR_SETTLED_SCANS:]
    return last[0] if len(last) == ADVISOR_SETTLED_SCANS and len(set(last)) == 1 else None


def watch_the_settled_advisor(ksmd: int) -> tuple[int, Measured, tuple[int, str, str]] | None:
    """Once the advisor's pages_to_scan held over ADVISOR_SETTLED_SCANS full scans: ksmd
    measured over the window status watches; None where the advisor moved meanwhile."""
    seen: list[int] = []

    def settled() -> int | None:
        completion_after(read_ksm("full_scans"), 30)
        seen.append(read_ksm("pages_to_scan"))
        return advisor_settled(seen)

    pages = eventually(settled, 120, interval=0, what="the advisor's pages_to_scan settling")
    with status_in_background("--json", "--window", str(STATUS_WINDOW)) as watching:
        measured = measure(ksmd, ADVISOR_MEASURED_SCANS, 60, STATUS_WINDOW - 2)
        stdout, stderr = watching.communicate(timeout=60)
    if read_ksm("pages_to_scan") != pages:
        print(f"the advisor moved from {pages} to {read_ksm('pages_to_scan')}: watching again")
        return None
    if watching.returncode == 0 and not same_host(json.loads(stdout)["advice"], measured):
        return None
    return pages, measured, (watching.returncode, stdout, stderr)


def same_host(advice: dict[str, Any], measured: Measured) -> bool:
    """Whether status modelled the host this test measured: the same pages registered. Lab
    guests and other programs on a shared machine register memory with KSM and take it away
    again (QEMU marks guest RAM mergeable); the model holds for the host it measured."""
    model = advice["model"]
    if model is None:
        print(f"status has no model yet ({advice['full_scans_needed']} scans needed): again")
        return False
    pages = model["pages_per_full_scan"]
    if abs(measured.pages - pages) > 0.1 * pages:
        print(f"{pages:.0f} pages a scan modelled, {measured.pages:.0f} measured: again")
        return False
    return True


def test_status_predicts_where_the_kernel_advisor_settles() -> None:
    """advisor_mode=scan-time with 128 MiB of identical pages registered: scan_time_advisor()
    rewrites pages_to_scan at the end of every full scan until it settles. status, watching
    the settled ksmd, says where the advisor settles (its pages_to_scan) and what ksmd then
    costs (its share of a CPU); both within 25% of what the kernel did, the CPU measured from
    ksmd's own schedstat over whole scans."""
    ksmd = find_ksmd("/proc")
    with ksm_control() as ksm, merging_child(ADVISOR_CHILD_BYTES) as child:
        if ksmd is None:
            pytest.fail("KSM is writable but no ksmd thread is in sight")
        if not Path(KSM, "advisor_mode").exists():
            missing = f"advisor_mode, since {since('advisor_mode')}"
            pytest.skip(f"this kernel has no scan-time advisor ({missing})")
        ksm.set(sleep_millisecs=SLEEP_MILLISECS, run=1)
        ksm.set_advisor_mode("scan-time")  # resets pages_to_scan to advisor_min_pages_to_scan
        child.wait_merged(ADVISOR_CHILD_BYTES // 4096 * 9 // 10, timeout=120)
        # status and this test watch the same scans: whatever else runs on the host, both
        # see what ksmd did meanwhile. Where the advisor moved meanwhile (memory registered
        # or gone elsewhere on the host), it settles again and both watch again.
        watched = eventually(
            lambda: watch_the_settled_advisor(ksmd), 600, interval=0, what="a settled watch"
        )
    pages, measured, (returncode, stdout, stderr) = watched
    assert (returncode, stderr) == (0, ""), stderr
    advice = json.loads(stdout)["advice"]
    advisor = advice["others"]["kernel_advisor"]
    assert advisor is not None, advice["not_holding"]
    predicted_pages = advisor["pages_to_scan"]
    predicted_cpu = advisor["predicted"]["ksmd_cpu_ratio"]
    print(
        f"advisor settled at pages_to_scan {pages}, ksmd {measured.cpu_ratio:.2%} of a CPU, "
        f"{measured.full_scan_seconds:.3f} s a full scan; status predicted {predicted_pages} "
        f"at {predicted_cpu:.2%}, {advisor['predicted']['full_scan_seconds']:.3f} s "
        f"(model {advice['model']})"
    )
    assert within(predicted_pages, pages), (predicted_pages, pages)
    assert within(predicted_cpu, measured.cpu_ratio), (predicted_cpu, measured)


# Half identical pages, half pages of their own: the unique half never merges, so once aged
# smart_scan (should_skip_rmap_item()) looks at it one full scan in nine.
MIXED_CHILD = r"""
import mmap, os, sys
size = int(sys.argv[1])
area = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
page = mmap.PAGESIZE
pattern = (b"ksm-exporter-test" * (page // 17 + 1))[:page]
for offset in range(0, size, page):
    area[offset:offset + page] = pattern if offset < size // 2 else os.urandom(page)
area.madvise(mmap.MADV_MERGEABLE)
print("ready", flush=True)
sys.stdin.read()
"""
MIXED_BYTES = 128 << 20
SMART_SCAN_PAGES = (2000, 6000)  # calibrated at the first, predicted at the second
SMART_SCAN_AGED = 30  # full scans until the unique pages are skipped 8 scans in 9
SMART_SCAN_WINDOW = 30


@contextlib.contextmanager
def mixed_child(size: int) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", MIXED_CHILD, str(size)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        yield process
    finally:
        process.kill()
        process.wait()


def test_status_model_holds_over_smart_scan_cycles() -> None:
    """64 MiB of identical pages beside 64 MiB that never merge: N, the full-scan time and the
    CPU of a scan repeat over smart_scan's cycle of 9 scans. status, calibrated over whole
    cycles at 2,000 pages, predicts 6,000 pages within 25% of ksmd measured over 3 cycles."""
    ksmd = find_ksmd("/proc")
    with ksm_control() as ksm, mixed_child(MIXED_BYTES):
        if ksmd is None:
            pytest.fail("KSM is writable but no ksmd thread is in sight")
        if (
            Path(KSM, "advisor_mode").exists()
            and "[scan-time]" in Path(KSM, "advisor_mode").read_text()
        ):
            pytest.skip("the kernel's advisor sets pages_to_scan on this host")
        if (
            not Path(KSM, "smart_scan").exists()
            or Path(KSM, "smart_scan").read_text().strip() != "1"
        ):
            pytest.skip("smart_scan is off or absent here")
        first, second = SMART_SCAN_PAGES
        ksm.set(pages_to_scan=first, sleep_millisecs=SLEEP_MILLISECS, run=1)
        completion_after(read_ksm("full_scans") + SMART_SCAN_AGED, 300)

        def calibrated_then_measured() -> tuple[dict[str, Any], Measured] | None:
            ksm.set(pages_to_scan=first)
            completion_after(read_ksm("full_scans") + 2, 60)
            skipped = read_ksm("pages_skipped")
            result = status("--json", "--window", str(SMART_SCAN_WINDOW))
            assert (result.returncode, result.stderr) == (0, ""), result.stderr
            assert read_ksm("pages_skipped") > skipped, "smart_scan skipped nothing"
            ksm.set(pages_to_scan=second)
            completion_after(read_ksm("full_scans") + 2, 60)
            measured = measure(ksmd, 3 * 9, 120)
            advice = json.loads(result.stdout)["advice"]
            return (advice, measured) if same_host(advice, measured) else None

        advice, measured = eventually(calibrated_then_measured, 600, 0, "a host as modelled")
    assert advice["not_holding"] is None, advice["not_holding"]
    fitted = advice["model"]
    assert fitted["pages_skipped_per_full_scan"] > 0
    model = Model(
        c=fitted["ksmd_cpu_seconds_per_page"],
        b=fitted["ksmd_cpu_seconds_per_batch"],
        n=fitted["pages_per_full_scan"],
        n_source=fitted["pages_per_full_scan_from"],
        settings_seen=fitted["pages_to_scan_values_seen"],
        sleep_millisecs=SLEEP_MILLISECS,
        hz=fitted["hz"],
        run_delay=fitted["run_delay_seconds_per_cpu_second"],
        off_cpu=fitted["off_cpu_seconds_per_cpu_second"],
    )
    predicted = model.predict(second)
    print(
        f"smart_scan: {fitted['pages_skipped_per_full_scan']:.0f} pages skipped a scan over "
        f"{fitted['full_scans_behind']} scans at {first} pages; at {second} predicted "
        f"{predicted.full_scan_seconds:.3f} s, {predicted.cpu_ratio:.2%}; measured "
        f"{measured.full_scan_seconds:.3f} s, {measured.cpu_ratio:.2%} ({measured.pages:.0f} "
        f"pages a scan, waiting {measured.run_delay:.2f} s a CPU-second)"
    )
    assert within(predicted.full_scan_seconds, measured.full_scan_seconds), (predicted, measured)
    assert within(predicted.cpu_ratio, measured.cpu_ratio), (predicted, measured)

"""Closed loop on this machine's KSM: the exporter's advice, applied, does what it predicted.

The exporter only reads; the test writes pages_to_scan as an operator would. A child holds
256 MiB of identical pages, merged before the exporter starts, so the exporter sees a steady
host. With `--tuning.steady-full-scan-seconds` below what the budget allows, the CPU budget
is what sets the pace. The exporter recommends from one setting (no cost per batch known
yet); once it has seen the recommended setting and refitted, its second recommendation is
applied, and what it predicted for that setting is compared with what ksmd then does,
measured here from `full_scans` and ksmd's schedstat.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from ksm_exporter.sources.ksmd import find_ksmd
from tests.support.eventually import eventually
from tests.support.exporter_process import RunningExporter, running_exporter
from tests.support.exposition import parse_samples, value
from tests.support.real_ksm import KSM, KsmControl, ksm_control, merging_child, read_ksm

pytestmark = pytest.mark.realksm

CHILD_BYTES = 256 << 20
FIRST_PAGES_TO_SCAN = 100  # the kernel's default, far below the answer
SLEEP_MILLISECS = 20
TOLERANCE = 0.25
MEASURED_SCANS = 8


@dataclass(frozen=True)
class Recommendation:
    pages_to_scan: int
    full_scan_seconds: float  # predicted at pages_to_scan
    cpu_ratio: float
    batch_cpu_seconds: float  # b when it was made


@dataclass(frozen=True)
class Measured:
    full_scan_seconds: float
    cpu_ratio: float


def recommendation(exporter: RunningExporter) -> Recommendation | None:
    samples = parse_samples(exporter.get())
    try:
        return Recommendation(
            int(value(samples, "ksm_tuning_recommended_pages_to_scan")),
            value(samples, "ksm_tuning_predicted_full_scan_seconds", settings="recommended"),
            value(samples, "ksm_tuning_predicted_ksmd_cpu_ratio", settings="recommended"),
            value(samples, "ksm_tuning_ksmd_cpu_seconds_per_batch"),
        )
    except KeyError:
        return None


def ksmd_cpu_ns(pid: int) -> int:
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0])


def completion_after(count: int, timeout: float) -> int:
    """Waits for full_scans to pass `count`, returning the new count as soon as it does."""

    def grown() -> int | None:
        now = read_ksm("full_scans")
        return now if now > count else None

    return eventually(grown, timeout, interval=0.002, what=f"full_scans above {count}")


def measure(ksmd: int, scans: int, timeout: float) -> Measured:
    """Full-scan time and ksmd's CPU share over `scans` full scans, from one completion to
    another."""
    first = completion_after(read_ksm("full_scans"), timeout)
    started, cpu = time.monotonic(), ksmd_cpu_ns(ksmd)
    last = completion_after(first + scans - 1, timeout)
    seconds, spent = time.monotonic() - started, ksmd_cpu_ns(ksmd) - cpu
    return Measured(seconds / (last - first), spent / 1e9 / seconds)


def closed_loop(ksm: KsmControl, ksmd: int, budget: float) -> tuple[Recommendation, Measured]:
    ksm.set(pages_to_scan=FIRST_PAGES_TO_SCAN)
    with running_exporter(
        "--collector.sample-interval=0.1",
        "--no-collector.process",
        f"--tuning.cpu-budget={budget}",
        "--tuning.steady-full-scan-seconds=0.1",  # below what the budget allows
    ) as exporter:
        first = eventually(lambda: recommendation(exporter), 180, 0.5, "a first recommendation")
        ksm.set(pages_to_scan=first.pages_to_scan)
        applied_at = read_ksm("full_scans")

        def refitted() -> Recommendation | None:
            seen = read_ksm("full_scans") >= applied_at + 8  # six whole scans after the change
            again = recommendation(exporter)
            return again if seen and again is not None and again.batch_cpu_seconds > 0 else None

        second = eventually(refitted, 120, 0.5, "a recommendation refitted at the new setting")
    ksm.set(pages_to_scan=second.pages_to_scan)
    completion_after(read_ksm("full_scans") + 2, 60)  # settled: whole scans at the setting
    measured = measure(ksmd, MEASURED_SCANS, 60)
    print(
        f"budget {budget}: recommended pages_to_scan {first.pages_to_scan} then "
        f"{second.pages_to_scan}; predicted {second.full_scan_seconds:.3f} s a full scan at "
        f"{second.cpu_ratio:.2%} of a CPU, measured {measured.full_scan_seconds:.3f} s at "
        f"{measured.cpu_ratio:.2%}"
    )
    return second, measured


@pytest.mark.parametrize("budget", [0.02, 0.05])
def test_recommendation_applied_gives_what_was_predicted(budget: float) -> None:
    ksmd = find_ksmd("/proc")
    with ksm_control() as ksm, merging_child(CHILD_BYTES) as child:
        if ksmd is None:
            pytest.fail("KSM is writable but no ksmd thread is in sight")
        advisor = Path(KSM, "advisor_mode")
        if advisor.exists() and "[scan-time]" in advisor.read_text():
            pytest.skip("the kernel's advisor sets pages_to_scan on this host")
        ksm.set(pages_to_scan=5000, sleep_millisecs=SLEEP_MILLISECS, run=1)
        child.wait_merged(CHILD_BYTES // 4096 * 9 // 10, timeout=120)
        predicted, measured = closed_loop(ksm, ksmd, budget)
    tolerance = TOLERANCE * predicted.full_scan_seconds
    assert abs(measured.full_scan_seconds - predicted.full_scan_seconds) <= tolerance, measured
    assert abs(measured.cpu_ratio - predicted.cpu_ratio) <= TOLERANCE * predicted.cpu_ratio, (
        predicted,
        measured,
    )


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

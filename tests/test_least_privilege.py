"""The exporter as `nobody` on this machine's real /sys and /proc.

Three ways it runs in production: as systemd's DynamicUser with the ambient capability
(setpriv gives the same), as the container's user whose interpreter carries the capability
as a file capability, and as a plain user without any.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.exporter_process import RunningExporter, running_exporter
from harness.exposition import Samples, names, parse_samples, value
from harness.real_ksm import MergingChild, ksm_control, merging_child
from ksm_exporter.privileges import CAP_DAC_READ_SEARCH
from ksm_exporter.sources.ksm_files import KSM_FILES
from tests.support.unprivileged import AMBIENT_DAC_READ_SEARCH, NobodyRuntime

NOBODY_UID = 65534
KSM = Path("/sys/kernel/mm/ksm")
CAPABILITY_HINT = (
    "cannot read the KSM counters of other users' processes: "
    "run as root or grant CAP_DAC_READ_SEARCH"
)


def capabilities(pid: int, task: str = "") -> dict[str, int]:
    status = Path(f"/proc/{pid}/{f'task/{task}/' if task else ''}status").read_text()
    return {key: int(val, 16) for key, val in re.findall(r"^(Cap\w+):\s+(\w+)$", status, re.M)}


def uid_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^Uid:\s+(\d+)", status, re.M)
    assert match
    return int(match.group(1))


def start_line(exporter: RunningExporter) -> str:
    err = exporter.stop()
    [line] = [line for line in err.splitlines() if 'msg="starting ksm-exporter"' in line]
    return line


# Everything read from sysfs and /proc/meminfo, and derived from them alone.
SYSFS_AND_SAVINGS = {m.metric for m in KSM_FILES} | {
    "ksm_available",
    "ksm_advisor_mode",
    "ksm_page_size_bytes",
    "ksm_memory_saved_bytes",
    "ksm_memory_saved_ratio",
}


# Served only while the host's counters give them a denominator, which may change between
# two scrapes on a host whose KSM is in use: judged from each scrape's own counters.
# ksm.rst: pages_sharing / pages_shared "how much saved", pages_unshared / pages_sharing
# "wasted effort", undefined where nothing is shared.
def mappings_per_shared_page_defined(shared: float, sharing: float, unshared: float) -> bool:
    return shared > 0


def wasted_effort_defined(shared: float, sharing: float, unshared: float) -> bool:
    return sharing > 0 or unshared > 0


RATIO_PRESENT_WHEN = {
    "ksm_mappings_per_shared_page": mappings_per_shared_page_defined,
    "ksm_unshared_pages_per_sharing_page": wasted_effort_defined,
}


def sysfs_names(text: str) -> set[str]:
    return names(parse_samples(text)) & SYSFS_AND_SAVINGS


def assert_ratios_follow_their_counters(text: str) -> None:
    samples = parse_samples(text)
    counts = [value(samples, f"ksm_pages_{name}") for name in ("shared", "sharing", "unshared")]
    for ratio, present_when in RATIO_PRESENT_WHEN.items():
        assert (ratio in names(samples)) == present_when(*counts), (ratio, counts)


@pytest.mark.e2e
def test_without_the_capability_every_sysfs_metric_is_served(nobody: NobodyRuntime) -> None:
    if not KSM.is_dir():
        pytest.skip(f"{KSM} does not exist: the kernel has no KSM")
    with running_exporter() as as_root:
        expected = sysfs_names(as_root.get())
    assert len(expected) >= 14
    with running_exporter(command=nobody.command(), env=nobody.env, cwd="/") as exporter:
        pid = exporter.process.pid
        assert uid_of(pid) == NOBODY_UID
        assert capabilities(pid)["CapEff"] == 0
        text = exporter.get()
        samples = parse_samples(text)
        assert sysfs_names(text) == expected
        assert_ratios_follow_their_counters(text)
        assert value(samples, "ksm_available") == 1
        assert value(samples, "ksm_exporter_collect_errors_total", source="sysfs") == 0
        assert value(samples, "ksm_pages_to_scan") == int((KSM / "pages_to_scan").read_text())
        line = start_line(exporter)
    assert f"uid={NOBODY_UID} cap_dac_read_search=False" in line


@pytest.mark.e2e
def test_ambient_capability_as_systemd_hands_it_over(nobody: NobodyRuntime) -> None:
    command = nobody.command(*AMBIENT_DAC_READ_SEARCH)
    with running_exporter(command=command, env=nobody.env, cwd="/") as exporter:
        pid = exporter.process.pid
        assert uid_of(pid) == NOBODY_UID
        assert capabilities(pid)["CapEff"] == 1 << CAP_DAC_READ_SEARCH
        assert "ksm_available" in exporter.get()
        line = start_line(exporter)
    assert f"uid={NOBODY_UID} cap_dac_read_search=True" in line


@pytest.mark.e2e
def test_file_capability_as_the_container_image_carries_it(nobody: NobodyRuntime) -> None:
    python = nobody.python_with_file_capability()
    with running_exporter(
        command=nobody.command(python=python), env=nobody.env, cwd="/"
    ) as exporter:
        pid = exporter.process.pid
        # A scrape first, so that the worker threads that read /proc exist.
        assert "ksm_available" in exporter.get()
        # Permitted by the file, made effective by the exporter at start-up, every thread.
        assert capabilities(pid)["CapPrm"] == 1 << CAP_DAC_READ_SEARCH
        tasks = [task.name for task in Path(f"/proc/{pid}/task").iterdir()]
        assert len(tasks) > 1
        for task in tasks:
            assert capabilities(pid, task)["CapEff"] == 1 << CAP_DAC_READ_SEARCH, task
        line = start_line(exporter)
    assert f"uid={NOBODY_UID} cap_dac_read_search=True" in line


@pytest.mark.e2e
def test_file_capability_outside_the_bounding_set_still_starts(nobody: NobodyRuntime) -> None:
    """A container run without --cap-add=DAC_READ_SEARCH: no capability, but it serves."""
    python = nobody.python_with_file_capability()
    command = nobody.command("--bounding-set=-dac_read_search", python=python)
    with running_exporter(command=command, env=nobody.env, cwd="/") as exporter:
        assert capabilities(exporter.process.pid)["CapPrm"] == 0
        assert "ksm_available" in exporter.get()
        line = start_line(exporter)
    assert f"uid={NOBODY_UID} cap_dac_read_search=False" in line


def merging_pages_of(samples: Samples, pid: int) -> float | None:
    for (name, labels), val in samples.items():
        if name == "ksm_process_merging_pages" and ("pid", str(pid)) in labels:
            return val
    return None


def root_owned_merging_child(child: MergingChild) -> None:
    assert uid_of(child.pid) == 0
    child.wait_merged(2000)


@pytest.mark.realksm
@pytest.mark.parametrize("how", ["ambient", "file"])
def test_with_the_capability_root_owned_processes_are_counted(
    nobody: NobodyRuntime, how: str
) -> None:
    if how == "ambient":
        command = nobody.command(*AMBIENT_DAC_READ_SEARCH)
    else:
        command = nobody.command(python=nobody.python_with_file_capability())
    with (
        ksm_control() as ksm,
        merging_child(16 << 20) as child,
        running_exporter(command=command, env=nobody.env, cwd="/") as exporter,
    ):
        ksm.set(pages_to_scan=1000, sleep_millisecs=10, run=1)
        root_owned_merging_child(child)
        low = child.merging_pages()
        samples = parse_samples(exporter.get())
        high = child.merging_pages()
        exported = merging_pages_of(samples, child.pid)
        assert exported is not None, "the root-owned child has no per-process series"
        assert min(low, high) <= exported <= max(low, high)
        assert value(samples, "ksm_exporter_processes_unreadable") == 0
        assert value(samples, "ksm_processes_registered") >= 1
        err = exporter.stop()
    assert CAPABILITY_HINT not in err


@pytest.mark.realksm
def test_without_the_capability_unreadable_processes_are_counted_and_named_once(
    nobody: NobodyRuntime,
) -> None:
    with (
        ksm_control() as ksm,
        merging_child(16 << 20) as child,
        running_exporter(command=nobody.command(), env=nobody.env, cwd="/") as exporter,
    ):
        ksm.set(pages_to_scan=1000, sleep_millisecs=10, run=1)
        root_owned_merging_child(child)
        scrapes = [parse_samples(exporter.get()) for _ in range(3)]
        for samples in scrapes:
            assert merging_pages_of(samples, child.pid) is None
            # At least the child and init, both root's. No upper bound: other work on this
            # machine may start thousands of processes meanwhile.
            assert value(samples, "ksm_exporter_processes_unreadable") >= 2
            assert value(samples, "ksm_available") == 1
        err = exporter.stop()
    hints = [line for line in err.splitlines() if CAPABILITY_HINT in line]
    assert len(hints) == 1, err
    assert "level=warn" in hints[0]

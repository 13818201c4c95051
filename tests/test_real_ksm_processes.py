"""Per-process metrics against the real KSM of this machine, through the running exporter.

ksmd is stopped (run=0, which keeps merged pages merged) before the exporter is scraped, so
the counters hold still and the exported values can be compared with `ksm_stat` exactly;
the comparison still allows for what changed between the two reads around the scrape.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ksm_exporter.sources.process_sweep import ProcessSweeper
from tests.support.exporter_process import running_exporter
from tests.support.exposition import Samples, parse_samples, value
from tests.support.real_ksm import (
    KsmControl,
    ksm_control,
    merging_child,
    qemu_link,
    read_ksm_stat,
)

pytestmark = pytest.mark.realksm

GUEST = "ksm-exporter-test-guest"
COUNTERS = {
    "ksm_process_merging_pages": "ksm_merging_pages",
    "ksm_process_rmap_items": "ksm_rmap_items",
    "ksm_process_zero_pages": "ksm_zero_pages",
    "ksm_process_profit_bytes": "ksm_process_profit",
}


@pytest.fixture
def ksm() -> Iterator[KsmControl]:
    with ksm_control() as control:
        control.set(pages_to_scan=2000, sleep_millisecs=10, run=1)
        yield control


def series_of(samples: Samples, name: str, pid: int) -> dict[str, str] | None:
    for sample_name, labels in samples:
        if sample_name == name and dict(labels)["pid"] == str(pid):
            return dict(labels)
    return None


def exported(samples: Samples, name: str, pid: int) -> float:
    labels = series_of(samples, name, pid)
    assert labels is not None, f"{name} has no series for pid {pid}"
    return value(samples, name, **labels)


def all_registered() -> dict[str, dict[str, int]]:
    """Every registered process's counters, as the kernel shows them now."""
    found = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = read_ksm_stat(pid)
        except OSError:
            continue
        if int(stat.get("ksm_rmap_items", 0)) or int(stat.get("ksm_merging_pages", 0)):
            found[pid] = {key: int(stat[key]) for key in COUNTERS.values()}
    return found


def own_cgroup() -> str:
    """This test's cgroup v2 path, which its children share."""
    lines = Path("/proc/self/cgroup").read_text().splitlines()
    return next(line[3:] for line in lines if line.startswith("0::"))


CGROUP_V2 = Path("/sys/fs/cgroup/unified")
PROXMOX_SCOPE = "/qemu.slice/100.scope"


@contextlib.contextmanager
def cgroup_v2(path: str) -> Iterator[Path]:
    """The cgroup v2 directory `path` (created, and removed after with what this test
    created), skipping where cgroup v2 cannot be written."""
    if not os.access(CGROUP_V2 / "cgroup.procs", os.W_OK):
        pytest.skip(f"cannot write cgroup v2 at {CGROUP_V2}")
    created = []
    directory = CGROUP_V2
    for part in path.strip("/").split("/"):
        directory /= part
        if not directory.exists():
            directory.mkdir()
            created.append(directory)
    try:
        yield directory
    finally:
        for pid in (directory / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):
                (CGROUP_V2 / "cgroup.procs").write_text(pid)
        for made in reversed(created):
            made.rmdir()


def test_a_proxmox_guest_in_its_scope_is_labelled_as_pve_exporter_keys_it(
    ksm: KsmControl,
) -> None:
    # qemu-server's command line: -id <vmid>, -name '<name>,debug-threads=on', -m <MiB>.
    proxmox = ("-id", "100", "-name", "web1,debug-threads=on", "-m", "4096")
    with (
        cgroup_v2(PROXMOX_SCOPE) as scope,
        merging_child(16 << 20, "madvise", argv0="kvm", extra_args=proxmox) as guest,
    ):
        (scope / "cgroup.procs").write_text(str(guest.pid))
        assert f"0::{PROXMOX_SCOPE}\n" in Path(f"/proc/{guest.pid}/cgroup").read_text()
        guest.wait_merged(2000)
        with running_exporter() as exporter:
            samples = parse_samples(exporter.get())
    labels = series_of(samples, "ksm_process_merging_pages", guest.pid)
    assert labels is not None
    assert (labels["vm_id"], labels["vm"], labels["cgroup"]) == ("100", "web1", PROXMOX_SCOPE)
    assert exported(samples, "ksm_process_guest_memory_bytes", guest.pid) == 4096 << 20


def totals(processes: dict[str, dict[str, int]]) -> dict[str, int]:
    return {key: sum(p[key] for p in processes.values()) for key in COUNTERS.values()}


def test_each_process_as_its_ksm_stat_says(ksm: KsmControl, tmp_path: Path) -> None:
    qemu = qemu_link(str(tmp_path))
    guest_args = ("-name", f"guest={GUEST},debug-threads=on")
    with (
        merging_child(32 << 20, "madvise") as plain,
        merging_child(32 << 20, "prctl", qemu, qemu, guest_args) as guest,
        running_exporter() as exporter,
    ):
        assert Path(f"/proc/{guest.pid}/comm").read_text() == "qemu-system-x86\n"
        plain.wait_merged(4000)
        guest.wait_merged(4000)
        ksm.set(run=0)
        before = {child.pid: child.ksm_stat() for child in (plain, guest)}
        samples = parse_samples(exporter.get())
        after = {child.pid: child.ksm_stat() for child in (plain, guest)}

    for pid in before:
        for metric, key in COUNTERS.items():
            low, high = sorted((int(before[pid][key]), int(after[pid][key])))
            assert low <= exported(samples, metric, pid) <= high, (metric, pid)
        for metric, key in (
            ("ksm_process_merge_any", "ksm_merge_any"),
            ("ksm_process_mergeable", "ksm_mergeable"),
        ):
            assert exported(samples, metric, pid) == (before[pid][key] == "yes")
    assert exported(samples, "ksm_process_merge_any", guest.pid) == 1
    assert exported(samples, "ksm_process_merge_any", plain.pid) == 0
    guest_labels = series_of(samples, "ksm_process_merging_pages", guest.pid)
    assert guest_labels is not None
    assert (guest_labels["comm"], guest_labels["vm"]) == ("qemu-system-x86", GUEST)
    plain_labels = series_of(samples, "ksm_process_merging_pages", plain.pid)
    assert plain_labels is not None
    assert "vm" not in plain_labels  # an empty label is left out
    assert plain_labels["cgroup"] == own_cgroup()
    assert value(samples, "ksm_processes_merging") >= 2
    assert value(samples, "ksm_exporter_processes_scanned") >= 3
    assert value(samples, "ksm_exporter_collect_errors_total", source="process") == 0


def test_limit_sums_the_rest_into_other(ksm: KsmControl) -> None:
    with (
        merging_child(48 << 20) as large,
        merging_child(16 << 20) as small,
        running_exporter("--collector.process.limit=1") as exporter,
    ):
        large.wait_merged(8000)
        small.wait_merged(2000)
        ksm.set(run=0)
        before = all_registered()
        samples = parse_samples(exporter.get())
        after = all_registered()

    own = [dict(labels)["pid"] for name, labels in samples if name == "ksm_process_merging_pages"]
    assert own == [str(large.pid)]
    assert value(samples, "ksm_process_other_processes") >= 1
    assert value(samples, "ksm_process_other_merging_pages") >= int(
        before[str(small.pid)]["ksm_merging_pages"]
    )
    low, high = totals(before), totals(after)
    for metric, key in COUNTERS.items():
        total = exported(samples, metric, large.pid) + value(
            samples, metric.replace("ksm_process_", "ksm_process_other_")
        )
        assert min(low[key], high[key]) <= total <= max(low[key], high[key]), metric


def test_always_include_keeps_a_sensitive_guest_in_view(ksm: KsmControl, tmp_path: Path) -> None:
    qemu = qemu_link(str(tmp_path))
    sensitive = ("-name", "guest=tenant-secret,debug-threads=on")
    with (
        merging_child(8 << 20, "madvise", qemu, qemu, sensitive) as guest,
        merging_child(48 << 20) as larger,
        running_exporter(
            "--collector.process.limit=1", "--collector.process.always-include=^tenant-secret$"
        ) as exporter,
    ):
        guest.wait_merged(1000)
        larger.wait_merged(8000)
        ksm.set(run=0)
        samples = parse_samples(exporter.get())

    own = {dict(labels)["pid"] for name, labels in samples if name == "ksm_process_merging_pages"}
    assert own == {str(larger.pid), str(guest.pid)}
    labels = series_of(samples, "ksm_process_merging_pages", guest.pid)
    assert labels is not None
    assert labels["vm"] == "tenant-secret"


def test_files_kept_open_give_fresh_counters_and_follow_exits(ksm: KsmControl) -> None:
    sweeper = ProcessSweeper("/proc", keep_limit=100_000)
    try:
        with merging_child(16 << 20) as child:
            pid = str(child.pid).encode()
            sweeper.sweep()
            assert pid in sweeper._kept
            child.wait_merged(3000)
            ksm.set(run=0)
            before = child.merging_pages()
            (found,) = [p for p in sweeper.sweep().registered if p.pid == child.pid]
            assert before <= (found.stat.merging_pages or 0) <= child.merging_pages()
            assert before >= 3000
        # Exited and reaped: the kept file fails with ESRCH, the pid is not opened again.
        root_fd = os.open("/proc", os.O_RDONLY)
        try:
            tally = sweeper._sweep_pids(root_fd, [pid])
        finally:
            os.close(root_fd)
        assert (tally.registered, tally.vanished, pid in sweeper._kept) == ([], 1, False)
        sweeper.sweep()
        assert all(os.fstat(fd) for fd in sweeper._kept.values())
    finally:
        sweeper.close()
    assert sweeper._kept == {}

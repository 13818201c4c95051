"""Per-process metrics against the real KSM of this machine, through the running exporter.

ksmd is stopped (run=0, which keeps merged pages merged) before the exporter is scraped, so
the counters hold still and the exported values can be compared with `ksm_stat` exactly;
the comparison still allows for what changed between the two reads around the scrape.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.cgroups import cgroup_v2, cgroup_v2_unwritable
from harness.exporter_process import running_exporter
from harness.exposition import Samples, parse_samples, value
from harness.real_ksm import (
    KsmControl,
    ksm_control,
    merging_child,
    qemu_link,
    read_ksm_stat,
)
from ksm_exporter.sources.process_sweep import ProcessSweeper

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


@dataclass(frozen=True)
class Platform:
    """A guest as one platform starts it: QEMU's argv[0] and options, and its cgroup."""

    argv0: str
    options: str  # split at spaces, as none of these options holds one
    cgroup: str
    labels: dict[str, str]  # the guest labels it must be served with; the others absent
    memory_bytes: int  # -m, worked out here from QEMU's units (MiB without a suffix)


POD_UID = "6b3c1f9e-1a2b-4c5d-8e7f-0123456789ab"
CONTAINER_ID = "4f1e" * 16
PLATFORMS = {
    # qemu-server (PVE/QemuServer.pm config_to_command): -id <vmid>, -name '<name>,...',
    # -m <MiB>, in the scope `systemd-run --scope --slice qemu --unit <vmid>` makes.
    "proxmox": Platform(
        "kvm",
        "-id 100 -name web1,debug-threads=on -m 4096",
        "/qemu.slice/100.scope",
        {"vm_id": "100", "vm": "web1"},
        4096 << 20,
    ),
    # libvirt (src/qemu/qemu_command.c), as Nova starts it: the domain UUID in -uuid, and
    # machined's scope named from qemu-<domain ID>-<name>, `-` escaped as systemd does
    # (\x2d), with libvirt 7.1+'s libvirt/emulator beneath it (libvirt's docs/cgroups.rst).
    "libvirt": Platform(
        "qemu-system-x86_64",
        "-name guest=instance-00000001,debug-threads=on -S"
        " -uuid 414426ac-7c2b-4f36-9a5e-3f1d2c0b8e71 -m size=2048M,slots=4,maxmem=8G",
        "/machine.slice/machine-qemu\\x2d1\\x2dinstance\\x2d00000001.scope/libvirt/emulator",
        {"vm": "instance-00000001", "vm_uuid": "414426ac-7c2b-4f36-9a5e-3f1d2c0b8e71"},
        2048 << 20,
    ),
    # KubeVirt: virt-launcher's libvirt names the domain <namespace>_<vmi>; QEMU runs in
    # the compute container, a containerd scope in the pod's slice (systemd cgroup driver:
    # the pod UID with `_` for `-`); -m in KiB as libvirt writes it.
    "kubevirt": Platform(
        "qemu-kvm",
        "-name guest=tenant-a_web-vmi,debug-threads=on -S"
        " -uuid 5D3A1C2B-0E9F-4A8B-B7C6-D5E4F3A2B1C0 -m size=1048576k",
        "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
        f"{POD_UID.replace('-', '_')}.slice/cri-containerd-{CONTAINER_ID}.scope",
        {
            "vm": "web-vmi",
            "namespace": "tenant-a",
            "vm_uuid": "5d3a1c2b-0e9f-4a8b-b7c6-d5e4f3a2b1c0",  # as libvirt prints it
        },
        1048576 << 10,
    ),
}
GUEST_LABELS = ("vm", "vm_id", "vm_uuid", "namespace")


@pytest.mark.parametrize("platform", PLATFORMS.values(), ids=PLATFORMS.keys())
def test_a_guest_in_its_platforms_cgroup_is_labelled_as_that_platforms_exporter_keys_it(
    ksm: KsmControl, platform: Platform
) -> None:
    reason = cgroup_v2_unwritable()
    if reason is not None:
        pytest.skip(reason)
    with (
        cgroup_v2(platform.cgroup) as cgroup,
        merging_child(
            16 << 20, "madvise", argv0=platform.argv0, extra_args=tuple(platform.options.split())
        ) as guest,
    ):
        (cgroup / "cgroup.procs").write_text(str(guest.pid))
        assert f"0::{platform.cgroup}\n" in Path(f"/proc/{guest.pid}/cgroup").read_text()
        guest.wait_merged(2000)
        with running_exporter() as exporter:
            samples = parse_samples(exporter.get())
    labels = series_of(samples, "ksm_process_merging_pages", guest.pid)
    assert labels is not None
    assert labels["cgroup"] == platform.cgroup
    assert {name: labels[name] for name in GUEST_LABELS if name in labels} == platform.labels
    assert exported(samples, "ksm_process_guest_memory_bytes", guest.pid) == platform.memory_bytes


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

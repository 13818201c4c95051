"""The three other tuners' rules, each from its own source: Debian's /usr/sbin/ksmtuned
(`adjust()`), oVirt MOM's doc/ksm.rules over its HostKSM and HostMemory collectors, and
KubeVirt's pkg/virt-handler/ksm/ksm.go (`calculateNewRunSleepAndPages()`).

Each expected figure is worked out here from the rival's own expressions and constants,
written out as its source writes them (the shell's integer $[...], Python's true division
then int(), Go's uint64 and float32), never from the code under test.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import pytest

from ksm_exporter.derive.other_tuners import (
    HostMemory,
    RivalInputs,
    TunerChoice,
    ksmtuned,
    kubevirt,
    mom,
)
from ksm_exporter.sources.host_memory import QemuProcess, read_qemu_processes

pytestmark = pytest.mark.unit

KIB = 1024
GIB_KIB = 1024 * 1024


def qemu(command_line: str, *, virtual_kib: int, resident_kib: int, pid: int = 1201) -> QemuProcess:
    comm = command_line.split(maxsplit=1)[0].rsplit("/", 1)[-1][:15]
    return QemuProcess(pid, comm, command_line, virtual_kib * KIB, resident_kib * KIB)


def host(
    total_kib: int | None,
    free_kib: int | None,
    *processes: QemuProcess,
    available_kib: int | None = None,
    qemu_known: bool = True,
) -> HostMemory:
    return HostMemory(
        None if total_kib is None else total_kib * KIB,
        None if free_kib is None else free_kib * KIB,
        None if available_kib is None else available_kib * KIB,
        tuple(processes) if qemu_known else None,
    )


def inputs(
    memory: HostMemory,
    *,
    run: int | None = 1,
    pages: int | None = 100,
    sleep: int | None = 20,
) -> RivalInputs:
    return RivalInputs(memory, run, pages, sleep)


def written(choice: TunerChoice) -> tuple[int | None, int | None, int | None]:
    return choice.run, choice.pages_to_scan, choice.sleep_millisecs


# A QEMU started as Debian's ksmtuned looks for it (`pgrep -f '^qemu-system.*-enable-kvm'`)
# and one as libvirt starts it (absolute path, -accel kvm): only the first counts for it.
KVM_GUEST = "qemu-system-x86_64 -enable-kvm -m 14336 -name web1"
LIBVIRT_GUEST = "/usr/bin/qemu-system-x86_64 -name guest=web1 -accel kvm -m 14336"


# --- ksmtuned ----------------------------------------------------------------------------


def ksmtuned_threshold(total: int) -> int:
    """thres=$[total * KSM_THRES_COEF / 100]; at least KSM_THRES_CONST (2048)."""
    thres = total * 20 // 100
    return 2048 if thres < 2048 else thres


def ksmtuned_sleep(total: int) -> int:
    """sleep=$[KSM_SLEEP_MSEC * 16 * 1024 * 1024 / total]; [ $sleep -le 10 ] && sleep=10"""
    sleep = 10 * 16 * 1024 * 1024 // total
    return 10 if sleep <= 10 else sleep


def test_ksmtuned_stops_ksm_where_qemu_and_the_threshold_fit_and_memory_is_free() -> None:
    total, free = 16 * GIB_KIB, 8 * GIB_KIB
    choice = ksmtuned(inputs(host(total, free)))
    assert 0 + ksmtuned_threshold(total) < total
    assert free > ksmtuned_threshold(total)
    assert written(choice) == (0, None, None)
    assert choice.committed_bytes == 0
    assert choice.threshold_bytes == ksmtuned_threshold(total) * KIB


def test_ksmtuned_counts_the_resident_memory_of_qemu_started_with_enable_kvm() -> None:
    total, free = 16 * GIB_KIB, 8 * GIB_KIB
    guest = qemu(KVM_GUEST, virtual_kib=15 * GIB_KIB, resident_kib=14 * GIB_KIB)
    # 14 GiB + 20% of 16 GiB is over MemTotal: start; free is over the threshold: decay,
    # from the pages it last wrote (the current pages_to_scan), raised to KSM_NPAGES_MIN.
    assert 14 * GIB_KIB + ksmtuned_threshold(total) >= total
    low = ksmtuned(inputs(host(total, free, guest), pages=100))
    assert written(low) == (1, max(64, 100 - 50), ksmtuned_sleep(total))
    assert low.sleep_millisecs == 10
    assert low.committed_bytes == 14 * GIB_KIB * KIB
    running = ksmtuned(inputs(host(total, free, guest), pages=1000))
    assert written(running) == (1, 1000 - 50, 10)


def test_ksmtuned_misses_qemu_started_by_path_as_libvirt_starts_it() -> None:
    guest = qemu(LIBVIRT_GUEST, virtual_kib=15 * GIB_KIB, resident_kib=14 * GIB_KIB)
    choice = ksmtuned(inputs(host(16 * GIB_KIB, 8 * GIB_KIB, guest)))
    assert (choice.run, choice.committed_bytes) == (0, 0)


def test_ksmtuned_boosts_below_the_threshold_within_its_range_and_scales_the_sleep() -> None:
    total = 4 * GIB_KIB  # 4 GiB: 10 ms x 16 GiB / 4 GiB
    free = ksmtuned_threshold(total) - 1
    low = ksmtuned(inputs(host(total, free), pages=100))
    assert written(low) == (1, 100 + 300, ksmtuned_sleep(total))
    assert low.sleep_millisecs == 40
    running = ksmtuned(inputs(host(total, free), pages=1100))
    assert written(running) == (1, min(1250, 1100 + 300), 40)


def test_ksmtuned_threshold_is_never_under_2048_kib() -> None:
    total, free = 8000, 1800  # 20% is 1,600 KiB: the threshold is 2,048, free is under it
    choice = ksmtuned(inputs(host(total, free), pages=100))
    assert ksmtuned_threshold(total) == 2048
    assert written(choice) == (1, 100 + 300, ksmtuned_sleep(total))


def test_ksmtuned_unknown_inputs_are_named_never_taken_as_0() -> None:
    choice = ksmtuned(inputs(host(16 * GIB_KIB, None)))
    assert written(choice) == (None, None, None)
    assert choice.unknown == ("MemFree + Buffers + Cached",)
    lost = ksmtuned(inputs(host(16 * GIB_KIB, 1, qemu_known=False)))
    assert lost.unknown == ("QEMU processes",)
    assert lost.reason == "unknown: QEMU processes"


# --- oVirt MOM ----------------------------------------------------------------------------


def mom_threshold(mem_available: int) -> float:
    """(defvar ksm_pressure_threshold (* Host.mem_available ksm_free_percent)), where
    Host.mem_available is MemTotal (HostMemory.collect()) and ksm_free_percent 0.20."""
    return mem_available * 0.20


def mom_sleep(mem_available: int) -> int:
    """(/ (* ksm_sleep_ms_baseline 16777216) Host.mem_available), int() by the controller."""
    return int(10 * 16777216 / mem_available)


def test_mom_counts_the_virtual_size_of_every_qemu() -> None:
    total, free = 24 * GIB_KIB, 12 * GIB_KIB
    # Small resident, large virtual: ksmtuned stops KSM, MOM counts 20 GiB and starts it.
    guest = qemu(LIBVIRT_GUEST, virtual_kib=20 * GIB_KIB, resident_kib=GIB_KIB)
    choice = mom(inputs(host(total, free, guest), pages=100))
    assert mom_threshold(total) + 20 * GIB_KIB >= total
    assert choice.committed_bytes == 20 * GIB_KIB * KIB
    # Free memory over the threshold: decay from the kernel's pages_to_scan, at least 64;
    # the sleep has no floor: 6 ms on 24 GiB, where ksmtuned's would be 10.
    assert written(choice) == (1, max(64, 100 - 50), mom_sleep(total))
    assert choice.sleep_millisecs == 6
    assert ksmtuned(inputs(host(total, free, guest))).run == 0


def test_mom_threshold_is_20_percent_of_memtotal_with_no_floor() -> None:
    total, free = 8000, 1800  # 20% is 1,600 KiB, and free is over it: MOM stops KSM
    choice = mom(inputs(host(total, free)))
    assert written(choice) == (0, None, None)
    assert choice.threshold_bytes == pytest.approx(mom_threshold(total) * KIB)
    # where ksmtuned's floor of 2,048 KiB puts the same host under pressure
    assert ksmtuned(inputs(host(total, free))).run == 1


def test_mom_steps_from_the_kernels_pages_to_scan() -> None:
    total = 16 * GIB_KIB
    free = int(mom_threshold(total)) - 1
    choice = mom(inputs(host(total, free), pages=1100))
    assert written(choice) == (1, min(1250, 1100 + 300), mom_sleep(total))
    lower = mom(inputs(host(total, free), pages=20))
    assert lower.pages_to_scan == 20 + 300
    # No pages_to_scan to step from: unknown, not a step from 0.
    assert mom(inputs(host(total, free), pages=None)).unknown == ("pages_to_scan",)


def test_mom_sleep_is_0_on_a_host_over_160_gib() -> None:
    total = 256 * GIB_KIB
    choice = mom(inputs(host(total, 1), pages=500))
    assert choice.sleep_millisecs == mom_sleep(total) == 0


# --- KubeVirt -----------------------------------------------------------------------------


def f32(value: float) -> float:
    return float(ctypes.c_float(value).value)


def kubevirt_pressure(total: int, available: int) -> bool:
    """!(float32(memStat.available) > float32(memStat.total)*freePercent), float32 0.2."""
    return not f32(available) > f32(f32(total) * f32(0.2))


def kubevirt_sleep(total: int, available: int) -> int:
    """sleepMsBaseline * (16 * 1024 * 1024) / (total - available), uint64; at least
    sleepMsBaseline/10."""
    sleep = 100 * (16 * 1024 * 1024) // ((total - available) % 2**64)
    return max(sleep, 100 // 10)


def test_kubevirt_without_pressure_decays_and_stops_below_64() -> None:
    total, available = 16 * GIB_KIB, 8 * GIB_KIB
    assert not kubevirt_pressure(total, available)
    memory = host(total, 1, available_kib=available)
    choice = kubevirt(inputs(memory, run=1, pages=1000))
    assert written(choice) == (1, 1000 - 50, kubevirt_sleep(total, available))
    assert choice.sleep_millisecs == 200  # 100 ms on a 16 GiB host, twice on half of it used
    assert written(kubevirt(inputs(memory, run=1, pages=100))) == (0, None, None)  # 50 < 64
    assert written(kubevirt(inputs(memory, run=1, pages=114))) == (1, 64, 200)
    assert written(kubevirt(inputs(memory, run=0, pages=1000))) == (0, None, None)


def test_kubevirt_under_pressure_starts_at_100_and_boosts_to_1250() -> None:
    total = 16 * GIB_KIB
    available = total // 10
    assert kubevirt_pressure(total, available)
    memory = host(total, 1, available_kib=available)
    sleep = kubevirt_sleep(total, available)
    assert written(kubevirt(inputs(memory, run=0, pages=5000))) == (1, 100, sleep)
    assert written(kubevirt(inputs(memory, run=1, pages=900))) == (1, 900 + 300, sleep)
    assert written(kubevirt(inputs(memory, run=1, pages=1000))) == (1, 1250, sleep)
    # run=2 (unmerging) is not "1": the handler takes KSM for stopped and starts it.
    assert written(kubevirt(inputs(memory, run=2, pages=900))) == (1, 100, sleep)


def test_kubevirt_sleep_floor_is_10_ms() -> None:
    total, available = 256 * GIB_KIB, 56 * GIB_KIB  # 200 GiB used: 100 x 16 / 200 = 8 ms
    assert 100 * 16 * GIB_KIB // (total - available) == 8
    choice = kubevirt(inputs(host(total, 1, available_kib=available), run=1, pages=1000))
    assert choice.sleep_millisecs == kubevirt_sleep(total, available) == 10


def test_kubevirt_tests_pressure_in_float32() -> None:
    # MemTotal 1 TiB + 70 KiB: in float32 the threshold rounds up past MemAvailable, which is
    # over 20% of MemTotal in exact arithmetic. The handler sees pressure and boosts.
    total = 2**30 + 70
    available = 214_748_385
    assert available > total * 0.2
    assert kubevirt_pressure(total, available)
    choice = kubevirt(inputs(host(total, 1, available_kib=available), run=1, pages=100))
    assert written(choice) == (1, 400, kubevirt_sleep(total, available))


def test_kubevirt_unknown_without_memavailable() -> None:
    choice = kubevirt(inputs(host(16 * GIB_KIB, 1), run=1))
    assert written(choice) == (None, None, None)
    assert choice.unknown == ("MemAvailable",)


# --- what they read -----------------------------------------------------------------------


def write_process(procfs: Path, pid: int, comm: str, argv: list[str], status: str) -> None:
    directory = procfs / str(pid)
    directory.mkdir()
    (directory / "comm").write_text(f"{comm}\n")
    (directory / "status").write_text(
        f"Name:\t{comm}\nUmask:\t0022\nState:\tS (sleeping)\n{status}"
    )
    (directory / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in argv))


def test_qemu_processes_are_read_as_ps_reads_them(tmp_path: Path) -> None:
    """VmSize and VmRSS of `<pid>/status`, in kB, what procps' ps shows as vsz and rss."""
    kvm = ["qemu-system-x86_64", "-enable-kvm", "-m", "2048"]
    sizes = "VmPeak:\t 3200000 kB\nVmSize:\t 3145728 kB\nVmHWM:\t 9 kB\nVmRSS:\t 1000 kB\n"
    write_process(tmp_path, 10, "qemu-system-x86", kvm, sizes)
    write_process(tmp_path, 11, "redis-server", ["/usr/bin/redis-server"], sizes)
    write_process(tmp_path, 12, "my qemu) (x", ["./a.out"], "VmSize:\t4 kB\nVmRSS:\t4 kB\n")
    write_process(tmp_path, 14, "qemu-zombie", [], "")  # no memory: a zombie
    (tmp_path / "13").mkdir()  # vanished meanwhile: no files
    assert read_qemu_processes(str(tmp_path)) == (
        QemuProcess(10, "qemu-system-x86", " ".join(kvm), 3145728 * KIB, 1000 * KIB),
        QemuProcess(12, "my qemu) (x", "./a.out", 4 * KIB, 4 * KIB),
    )
    assert read_qemu_processes(str(tmp_path / "absent")) is None


def test_qemu_processes_are_unknown_where_hidepid_may_hide_some(tmp_path: Path) -> None:
    write_process(
        tmp_path, 10, "qemu-system-x86", ["qemu-system-x86_64"], "VmSize:\t4 kB\nVmRSS:\t4 kB\n"
    )
    (tmp_path / "self").mkdir()
    mountinfo = tmp_path / "self" / "mountinfo"
    mountinfo.write_text(f"90 1 0:50 / {tmp_path.resolve()} rw - proc proc rw,hidepid=invisible\n")
    # has_pid_permissions(): hidden from all but the mount's gid= and CAP_SYS_PTRACE.
    assert read_qemu_processes(str(tmp_path)) is None
    assert read_qemu_processes(str(tmp_path), sees_hidden=True) == (
        QemuProcess(10, "qemu-system-x86", "qemu-system-x86_64", 4 * KIB, 4 * KIB),
    )
    mountinfo.write_text(f"90 1 0:50 / {tmp_path.resolve()} rw - proc proc rw\n")
    assert read_qemu_processes(str(tmp_path)) is not None

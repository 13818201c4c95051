"""`status --why` on real KSM: for each cause this machine can produce, a process is put in
exactly that state and the answer names that cause first, with evidence that matches the
kernel's own files as the test reads them.

Every test holds the KSM lock; run, pages_to_scan, sleep_millisecs, the advisor and
smart_scan are put back as they were, even on failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.eventually import eventually
from harness.exposition import parse_samples, render
from harness.real_ksm import KsmControl, ksm_control, read_ksm, read_ksm_stat, write_ksm
from harness.why_workload import why_child
from ksm_exporter.collector.collection import KsmCollection
from ksm_exporter.reading.host_reader import HostReader
from ksm_exporter.reading.processes import ProcessOptions
from ksm_exporter.sources.roots import Roots
from tests.support.unprivileged import AMBIENT_DAC_READ_SEARCH, NobodyRuntime
from tests.test_ksmtuned_real import comm, running_ksmtuned, skip_reason

pytestmark = pytest.mark.realksm

MiB = 1 << 20
PAGE = os.sysconf("SC_PAGE_SIZE")


@pytest.fixture
def ksm() -> Iterator[KsmControl]:
    with ksm_control() as control:
        control.set_advisor_mode("none")  # pages_to_scan is the advisor's otherwise
        smart_scan = (
            read_ksm("smart_scan") if os.path.exists("/sys/kernel/mm/ksm/smart_scan") else None
        )
        try:
            yield control
        finally:
            if smart_scan is not None and read_ksm("smart_scan") != smart_scan:
                write_ksm("smart_scan", smart_scan)


def set_smart_scan(value: int) -> None:
    if not os.path.exists("/sys/kernel/mm/ksm/smart_scan"):
        return
    write_ksm("smart_scan", value)


def why(target: int | str) -> tuple[int, dict[str, Any]]:
    command = [sys.executable, "-m", "ksm_exporter", "status", "--why", str(target), "--json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.stderr == "", result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return result.returncode, data


def why_text(target: int | str) -> str:
    command = [sys.executable, "-m", "ksm_exporter", "status", "--why", str(target)]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout


def cause(data: dict[str, Any]) -> dict[str, Any]:
    check: dict[str, Any] = data["checks"][-1]
    assert check["holds"] is True, json.dumps(data, indent=1)
    return check


def evidence(check: dict[str, Any]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for item in check["evidence"]:
        found.setdefault(item["file"], []).append(item["value"])
    return found


def mergeable_kb(pid: int, name: str) -> int:
    """`name` summed over the process's areas flagged mg, read here from smaps itself."""
    total = 0
    sizes: dict[str, int] = {}
    with open(f"/proc/{pid}/smaps") as smaps:
        for line in smaps:
            key, _, rest = line.partition(":")
            if key == "VmFlags":
                if "mg" in rest.split():
                    total += sizes.get(name, 0)
                sizes = {}
            elif rest.strip().endswith(" kB"):
                sizes[key] = int(rest.split()[0])
    return total


def wait_scans_after(pid: int, pages: int, scans: int = 2, timeout: float = 180) -> None:
    """Until ksmd tracks the process's `pages` and then completes `scans` more full scans."""
    eventually(
        lambda: int(read_ksm_stat(pid)["ksm_rmap_items"]) >= pages or None,
        timeout,
        what=f"ksmd tracking {pages} pages of {pid}",
    )
    start = read_ksm("full_scans")
    eventually(
        lambda: read_ksm("full_scans") >= start + scans or None,
        timeout,
        what=f"{scans} full scans",
    )


def test_a_process_that_registered_nothing_is_not_registered(ksm: KsmControl) -> None:
    ksm.set(run=1)
    with why_child(8 * MiB, "identical", register="none") as child:
        status, data = why(child.pid)
        stat = read_ksm_stat(child.pid)
    assert status == 0
    check = cause(data)
    assert check["reason"] == "not_registered"
    seen = evidence(check)[f"/proc/{child.pid}/ksm_stat"]
    if "ksm_mergeable" in stat:  # 6.14 and later
        assert f"ksm_mergeable: {stat['ksm_mergeable']}" in seen
        assert stat["ksm_mergeable"] == "no"
    else:
        assert evidence(check)[f"/proc/{child.pid}/smaps"] == ["0 areas with VmFlags mg"]


@contextlib.contextmanager
def paused_qemu(name: str, mem_merge: str) -> Iterator[subprocess.Popen[bytes]]:
    """A real QEMU under TCG, its CPU stopped (-S): its RAM is mapped, registered with KSM
    or not as mem-merge says, and never run. Ready once its QMP monitor answers: QEMU runs
    its main loop only after the machine and its RAM are set up."""
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        pytest.skip("qemu-system-x86_64 is missing: apt-get install qemu-system-x86")
    with tempfile.TemporaryDirectory() as directory:
        monitor = os.path.join(directory, "qmp")
        command = [
            qemu, "-accel", "tcg", "-machine", f"pc,mem-merge={mem_merge}", "-m", "64",
            "-nodefaults", "-display", "none", "-S", "-name", f"guest={name},debug-threads=on",
            "-qmp", f"unix:{monitor},server=on,wait=off",
        ]  # fmt: skip
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            eventually(lambda: os.path.exists(monitor) or None, 30, what="QEMU's QMP socket")
            query_status(monitor)
            yield process
        finally:
            process.kill()
            process.wait()


def query_status(path: str) -> None:
    """QMP's greeting, capabilities, then `query-status`: QEMU's main loop is running."""
    with socket.socket(socket.AF_UNIX) as qmp:
        qmp.settimeout(30)
        qmp.connect(path)
        replies = qmp.makefile("r")
        assert "QMP" in json.loads(replies.readline())
        for command in ("qmp_capabilities", "query-status"):
            qmp.sendall(json.dumps({"execute": command}).encode() + b"\n")
            assert "return" in json.loads(replies.readline())


def test_a_qemu_guest_with_mem_merge_off_is_named_by_its_option(ksm: KsmControl) -> None:
    ksm.set(run=1)
    name = f"why-test-{os.getpid()}"
    with paused_qemu(name, "off") as guest:
        status, data = why(name)
        stat = read_ksm_stat(guest.pid)
        with open(f"/proc/{guest.pid}/cmdline", "rb") as f:
            cmdline = f.read()
    assert status == 0
    assert data["pid"] == guest.pid
    check = cause(data)
    assert check["reason"] == "qemu_mem_merge_off"
    assert b"mem-merge=off" in cmdline
    assert evidence(check)[f"/proc/{guest.pid}/cmdline"] == ["-machine mem-merge=off"]
    assert stat.get("ksm_mergeable", "no") == "no"


def test_the_same_guest_with_mem_merge_on_is_registered(ksm: KsmControl) -> None:
    ksm.set(run=1)
    name = f"why-test-on-{os.getpid()}"
    with paused_qemu(name, "on") as guest:
        _, data = why(guest.pid)
        stat = read_ksm_stat(guest.pid)
    assert stat.get("ksm_mergeable", "yes") == "yes"
    # Its firmware's pages may merge already: then it merges well and no more is checked.
    assert data["reason"] not in ("not_registered", "qemu_mem_merge_off"), data
    for check in data["checks"]:
        if check["reason"] == "not_registered":
            assert check["holds"] is False


def test_a_vm_name_two_processes_carry_is_one_line(ksm: KsmControl) -> None:
    name = f"why-twice-{os.getpid()}"
    with paused_qemu(name, "off") as first, paused_qemu(name, "off") as second:
        command = [sys.executable, "-m", "ksm_exporter", "status", "--why", name]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert str(first.pid) in lines[0]
    assert str(second.pid) in lines[0]


def test_ksm_stopped_by_the_real_ksmtuned_names_it(ksm: KsmControl, tmp_path: Path) -> None:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    ksm.set(run=1)
    with why_child(8 * MiB, "identical") as child, running_ksmtuned(tmp_path) as tuner:
        decisions = eventually(tuner.log.decisions, 10, what="ksmtuned's first decision")
        if decisions[0] is not None:
            pytest.skip("ksmtuned starts KSM on this host (free memory under its threshold)")
        eventually(lambda: read_ksm("run") == 0 or None, 10, what="ksmtuned stopping KSM")
        status, data = why(child.pid)
        loop = tuner.loop_pid
        assert comm(loop) == "ksmtuned"
    assert status == 0
    check = cause(data)
    assert check["reason"] == "ksm_stopped"
    assert evidence(check)["/sys/kernel/mm/ksm/run"] == ["0"]
    assert f"ksmtuned runs here (pid {loop})" in check["sentence"]
    assert "free memory is above it" in check["sentence"]  # its rule, as ksmtuned applies it


def test_a_process_ksmd_has_not_reached_at_a_slow_pace(ksm: KsmControl) -> None:
    ksm.set(pages_to_scan=10, sleep_millisecs=1000, run=1)
    with why_child(32 * MiB, "identical") as child:
        status, data = why(child.pid)
        rmap = int(read_ksm_stat(child.pid)["ksm_rmap_items"])
        registered_kb = mergeable_kb(child.pid, "Anonymous")
    assert status == 0
    check = cause(data)
    assert check["reason"] == "not_reached"
    seen = evidence(check)
    assert seen["/sys/kernel/mm/ksm/pages_to_scan"] == ["10"]
    assert seen["/sys/kernel/mm/ksm/sleep_millisecs"] == ["1000"]
    assert seen[f"/proc/{child.pid}/smaps"] == [f"Anonymous {registered_kb} kB registered"]
    tracked = int(seen[f"/proc/{child.pid}/ksm_stat"][0].split(": ")[1])
    assert tracked <= rmap  # it only grows meanwhile
    assert tracked * 2 < registered_kb * 1024 // PAGE


def test_the_metric_carries_the_cause_status_names(ksm: KsmControl) -> None:
    """A scrape of this host: the child ksmd has not reached has one series with that
    reason, as `status --why` says."""
    ksm.set(pages_to_scan=10, sleep_millisecs=1000, run=1)
    with why_child(32 * MiB, "identical") as child:
        _, data = why(child.pid)
        reader = HostReader(Roots(), processes=ProcessOptions(limit=100_000))
        try:
            samples = parse_samples(render(KsmCollection(reader)))
        finally:
            reader.close()
    assert data["reason"] == "not_reached"
    mine = [
        dict(labels)
        for (name, labels), _ in samples.items()
        if name == "ksm_process_merging_little_info" and dict(labels)["pid"] == str(child.pid)
    ]
    assert [labels["reason"] for labels in mine] == ["not_reached"]


def scanned_then_explained(content: str, size: int) -> tuple[dict[str, Any], dict[str, str], str]:
    """A child of `size` bytes of `content`, explained once ksmd tracks all of it and has
    completed two more full scans, smart_scan off: its JSON and text answers and its
    ksm_stat."""
    set_smart_scan(0)
    write_ksm("pages_to_scan", 1000)
    write_ksm("sleep_millisecs", 20)
    write_ksm("run", 1)
    with why_child(size, content) as child:
        wait_scans_after(child.pid, size // PAGE)
        status, data = why(child.pid)
        text = why_text(child.pid)
        stat = read_ksm_stat(child.pid)
    assert status == 0
    return data, stat, text


def test_pages_rewritten_faster_than_the_scan_are_volatile(ksm: KsmControl) -> None:
    data, stat, _text = scanned_then_explained("rewrite", 8 * MiB)
    assert cause(data)["reason"] == "volatile", json.dumps(data, indent=1)
    assert int(stat["ksm_merging_pages"]) * 20 < int(stat["ksm_rmap_items"])


def test_pages_in_transparent_huge_pages(ksm: KsmControl) -> None:
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if not thp.exists() or "[never]" in thp.read_text():
        pytest.skip("transparent huge pages are not available here")
    ksm.set(pages_to_scan=1000, sleep_millisecs=20, run=1)
    size = 16 * MiB
    with why_child(size, "unique", huge="thp") as child:
        huge_kb = mergeable_kb(child.pid, "AnonHugePages")
        if huge_kb * 1024 < size // 2:
            pytest.skip(f"the kernel gave the child only {huge_kb} kB of huge pages")
        wait_scans_after(child.pid, size // PAGE)
        status, data = why(child.pid)
        huge_after = mergeable_kb(child.pid, "AnonHugePages")
    assert status == 0
    check = cause(data)
    assert check["reason"] == "huge_pages", json.dumps(data, indent=1)
    seen = evidence(check)
    assert seen["/sys/kernel/mm/transparent_hugepage/enabled"] == [
        next(w[1:-1] for w in thp.read_text().split() if w.startswith("["))
    ]
    shown = int(seen[f"/proc/{child.pid}/smaps"][0].split()[1])
    assert min(huge_kb, huge_after) <= shown <= max(huge_kb, huge_after)


def test_unique_content_is_unique(ksm: KsmControl) -> None:
    data, _stat, text = scanned_then_explained("unique", 16 * MiB)
    assert cause(data)["reason"] == "unique", json.dumps(data, indent=1)
    assert "CAUSE    its content is unique" in text
    assert text.splitlines()[-1].startswith("Cause: unique: ")


def why_as_nobody(nobody: NobodyRuntime, pid: int, *setpriv: str) -> str:
    command = [*nobody.command(*setpriv), "-m", "ksm_exporter", "status", "--why", str(pid)]
    result = subprocess.run(
        command,
        env={**os.environ, **nobody.env},
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    return result.stdout


def test_without_privilege_each_unreadable_file_is_one_clear_line(
    ksm: KsmControl, nobody: NobodyRuntime
) -> None:
    """Another user's process: without CAP_DAC_READ_SEARCH its ksm_stat cannot be read; with
    it, ksm_stat can but smaps cannot (it needs ptrace access): never a cause as fact."""
    ksm.set(pages_to_scan=10, sleep_millisecs=1000, run=1)
    with why_child(32 * MiB, "identical") as child:
        bare = why_as_nobody(nobody, child.pid)
        capable = why_as_nobody(nobody, child.pid, *AMBIENT_DAC_READ_SEARCH)
    last = bare.splitlines()[-1]
    assert last.startswith("Cause: unknown: "), bare
    assert f"/proc/{child.pid}/ksm_stat" in last
    assert "EACCES" in last
    assert capable.splitlines()[-1].startswith("Cause: unknown: "), capable
    denied = [line for line in capable.splitlines() if line.lstrip().startswith("unknown ")]
    assert any(f"/proc/{child.pid}/smaps: needs ptrace read access" in line for line in denied), (
        capable
    )

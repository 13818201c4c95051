"""Real QEMU guests on this host: what KSM merged of each VM, as the exporter attributes it.

Two guests boot the same lab kernel under TCG with `-name guest=NAME`; QEMU registers their
RAM with KSM. With host KSM running they merge, then ksmd is held still (a long sleep) so that
the kernel's figures, the exporter's and Prometheus' describe the same instant.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from harness.cgroups import cgroup_v2, cgroup_v2_unwritable
from harness.dashboards import load, panels, queries
from harness.eventually import eventually
from harness.exporter_process import RunningExporter, running_exporter
from harness.exposition import Samples, parse_samples
from harness.prometheus_server import running_prometheus, scrape_config
from harness.real_ksm import host_in_use, ksm_lock, ksm_writable, read_ksm, write_ksm
from lab.captures import Capture
from lab.initramfs import Cpio, static_busybox
from lab.kernels import SUITES, Unavailable, fetch
from lab.qemu import tcg_command

GUEST_MEMORY_MIB = 256
# Both guests boot the same kernel: Debian 12's own, which boots reliably under TCG.
SUITE = SUITES[0]
SETTINGS = ("pages_to_scan", "sleep_millisecs", "run")  # restored in this order
MERGE_SETTINGS = {"pages_to_scan": 5000, "sleep_millisecs": 20, "run": 1}
HOLD_STILL_MS = 600_000
FULL_SCANS = 3  # after both guests booted: enough for their identical pages to merge
JOB = "ksm"
READY = "ksm-lab-guest-ready"
INIT = f"""#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox echo {READY}
exec /bin/busybox sleep 2147483647
"""


class GuestCrashed(Exception):
    """Raised at once, not retried by eventually() as an AssertionError would be."""


@dataclass
class Guest:
    name: str
    process: subprocess.Popen[bytes]
    console: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def booted(self) -> bool:
        if self.process.poll() is not None:
            raise GuestCrashed(f"guest {self.name} exited: {self.console.read_text()[-2000:]}")
        return self.console.exists() and READY in self.console.read_text(errors="replace")

    def merging_pages(self) -> int:
        """The QEMU process's own count, from ksm_stat (or its own file on older hosts)."""
        capture = Capture("", 0, {f"proc/{self.pid}/{name}": _read(self.pid, name)
                                  for name in ("ksm_stat", "ksm_merging_pages")})  # fmt: skip
        return capture.counters(self.pid).get("ksm_merging_pages", 0)


def _read(pid: int, name: str) -> str:
    try:
        with open(f"/proc/{pid}/{name}") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def guest_image(path: Path) -> Path:
    archive = Cpio()
    archive.copy(static_busybox(), "/bin/busybox")
    archive.file("/init", INIT.encode(), 0o755)
    archive.directory("/proc")
    archive.write(path)
    return path


def start(name: str, vmlinuz: Path, image: Path, work: Path) -> Guest:
    console = work / f"{name}.console"
    console.unlink(missing_ok=True)
    command = [
        *tcg_command(vmlinuz, image, GUEST_MEMORY_MIB, host_merges=True),
        "-name", f"guest={name}",
        "-serial", f"file:{console}",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return Guest(name, process, console)


def all_booted(running: list[Guest]) -> bool:
    return all(guest.booted() for guest in running)


def stop(running: list[Guest]) -> None:
    for guest in running:
        guest.process.kill()
        guest.process.wait()


@contextlib.contextmanager
def booted(start_all: Callable[[], list[Guest]], what: str) -> Iterator[list[Guest]]:
    """The guests `start_all` starts, booted, and stopped after in every case; a boot that
    crashes under emulation is tried once more."""
    running: list[Guest] = []
    try:
        for attempt in (1, 2):
            running = start_all()
            try:
                eventually(partial(all_booted, running), 120, 0.5, what)
                break
            except (AssertionError, GuestCrashed):
                stop(running)
                if attempt == 2:
                    raise
                print("a guest kernel crashed under emulation; booting again", file=sys.stderr)
        yield running
    finally:
        stop(running)


@contextlib.contextmanager
def guests(names: tuple[str, ...], work: Path) -> Iterator[list[Guest]]:
    """The guests, booted; a boot that crashes under emulation is tried once more."""
    kernel = fetch(SUITE)
    image = guest_image(work / "guest.cpio")
    with booted(
        lambda: [start(name, kernel.vmlinuz, image, work) for name in names], "the guests to boot"
    ) as running:
        yield running


@contextlib.contextmanager
def host_ksm() -> Iterator[None]:
    """KSM merging fast, under the host lock; the previous settings are put back after."""
    reason = ksm_writable()
    if reason is not None:
        raise Unavailable(reason)
    with ksm_lock():
        in_use = host_in_use()
        if in_use is not None:
            raise Unavailable(in_use)
        saved = {name: read_ksm(name) for name in SETTINGS}
        try:
            for name in SETTINGS:
                write_ksm(name, MERGE_SETTINGS[name])
            yield
        finally:
            for name in SETTINGS:
                write_ksm(name, saved[name])


def kernel_view(running: list[Guest]) -> tuple[object, ...]:
    """What ksmd changes: the global counters and each guest's ksm_stat."""
    files = ("pages_shared", "pages_sharing", "full_scans")
    return (*(read_ksm(name) for name in files), *(_read(g.pid, "ksm_stat") for g in running))


def hold_still(running: list[Guest]) -> None:
    write_ksm("sleep_millisecs", HOLD_STILL_MS)
    last: list[tuple[object, ...]] = []

    def still() -> bool:
        last.append(kernel_view(running))
        return len(last) > 1 and last[-1] == last[-2]

    eventually(still, timeout=60, interval=0.5, what="ksmd to hold still")


def vm_table_query() -> tuple[str, dict[str, str]]:
    """The host dashboard's per-VM merged-memory query, and its variables' match-all values."""
    dashboard = load("ksm-host.json")
    tables = {str(p.title) for p in panels(dashboard) if p.type_val == "table"}
    (query,) = [
        q
        for q in queries("ksm-host.json")
        if q.panel in tables
        and "ksm_process_merging_pages" in q.expr
        and "vm" in q.expr
        and "ksm_process_guest_memory_bytes" not in q.expr  # the share column, not the bytes
    ]
    names = [v.name for v in (dashboard.templating.list_val or [])] if dashboard.templating else []
    return query.expr, {str(name): ".*" for name in names}


@dataclass
class GuestFigures:
    name: str
    pid: int
    kernel_pages: int  # from the QEMU process's ksm_stat
    exported_pages: float | None  # ksm_process_merging_pages{vm=name}
    own_under_limit: bool  # a series of its own with --collector.process.limit=1
    always_included: bool  # --collector.process.always-include matches this guest ...
    own_when_included: bool  # ... and it has a series of its own under limit=1 then
    dashboard_bytes: float | None  # the VM table's row for it, from Prometheus

    def attributed(self, page_size: int) -> bool:
        return self.exported_pages == self.kernel_pages and self.dashboard_bytes == (
            self.kernel_pages * page_size
        )


@dataclass
class Attribution:
    page_size: int
    guests: list[GuestFigures]
    pages_shared: int
    pages_sharing: int
    exported_total_pages: float  # every per-process series plus the `other` sum
    limit_other_pages: float  # ksm_process_other_merging_pages with limit=1
    limited_series: int  # per-process series with limit=1: the host's top process
    included_series: int  # ... and with the smaller guest always included
    problems: list[str] = field(default_factory=list)

    def summary(self) -> list[str]:
        return [
            f"guest {g.name}: {g.kernel_pages * self.page_size} merged, "
            f"{'attributed' if g.attributed(self.page_size) else 'not attributed'}"
            for g in self.guests
        ]


def _by_vm(samples: Samples, name: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for (sample, labels), value in samples.items():
        vm = dict(labels).get("vm")
        if sample == name and vm:
            found[vm] = value
    return found


def _count(samples: Samples, name: str) -> int:
    return sum(1 for sample, _ in samples if sample == name)


def _value(samples: Samples, name: str) -> float:
    return sum(value for (sample, _), value in samples.items() if sample == name)


def attribute(names: tuple[str, str], work: Path) -> Attribution:
    """Boot the guests, merge, and read the kernel, three exporters and Prometheus."""
    if shutil.which("prometheus") is None:
        raise Unavailable("prometheus is missing: apt-get install prometheus")
    with host_ksm(), guests(names, work) as running:
        start = read_ksm("full_scans")
        eventually(lambda: read_ksm("full_scans") >= start + FULL_SCANS, 120, 0.5, "full scans")
        hold_still(running)
        kernel_pages = {g.name: g.merging_pages() for g in running}
        smaller = min(running, key=lambda g: kernel_pages[g.name])
        with contextlib.ExitStack() as stack:
            default = stack.enter_context(running_exporter())
            limited = stack.enter_context(running_exporter("--collector.process.limit=1"))
            included = stack.enter_context(
                running_exporter(
                    "--collector.process.limit=1",
                    f"--collector.process.always-include=^{smaller.name}$",
                )
            )
            samples, limited_samples, included_samples = (
                parse_samples(e.get()) for e in (default, limited, included)
            )
            dashboard = vm_table(default)
        after = {g.name: g.merging_pages() for g in running}
        page_size = int(_value(samples, "ksm_page_size_bytes"))
        merged = _by_vm(samples, "ksm_process_merging_pages")
        limited_own = _by_vm(limited_samples, "ksm_process_merging_pages")
        included_own = _by_vm(included_samples, "ksm_process_merging_pages")
        attribution = Attribution(
            page_size=page_size,
            guests=[
                GuestFigures(
                    g.name,
                    g.pid,
                    kernel_pages[g.name],
                    merged.get(g.name),
                    g.name in limited_own,
                    g is smaller,
                    g.name in included_own,
                    dashboard.get(g.name),
                )
                for g in running
            ],
            pages_shared=int(_value(samples, "ksm_pages_shared")),
            pages_sharing=int(_value(samples, "ksm_pages_sharing")),
            exported_total_pages=_value(samples, "ksm_process_merging_pages")
            + _value(samples, "ksm_process_other_merging_pages"),
            limit_other_pages=_value(limited_samples, "ksm_process_other_merging_pages"),
            limited_series=_count(limited_samples, "ksm_process_merging_pages"),
            included_series=_count(included_samples, "ksm_process_merging_pages"),
        )
        if after != kernel_pages:
            attribution.problems.append(f"guests' ksm_stat moved during the scrapes: {after}")
        return attribution


def vm_table(exporter: RunningExporter) -> dict[str, float]:
    """{vm: value} of the dashboard's VM table query, run by a real Prometheus."""
    expr, variables = vm_table_query()
    variables |= {"job": JOB, "instance": exporter.address, "__rate_interval": "4s"}
    for name in sorted(variables, key=len, reverse=True):
        expr = expr.replace("$" + name, variables[name])
    with running_prometheus(scrape_configs=[scrape_config(JOB, exporter.address)]) as prometheus:
        prometheus.wait_for_scrapes(2)
        result: list[dict[str, Any]] = prometheus.query(expr)
    return {str(s["metric"]["vm"]): float(s["value"][1]) for s in result if "vm" in s["metric"]}


def problems(attribution: Attribution) -> list[str]:
    """What does not hold; empty when every guest is attributed as the kernel counts it."""
    found = list(attribution.problems)
    total = attribution.pages_shared + attribution.pages_sharing
    guests_pages = sum(g.kernel_pages for g in attribution.guests)
    for g in attribution.guests:
        if g.kernel_pages <= 0:
            found.append(f"guest {g.name} merged nothing")
        if not g.attributed(attribution.page_size):
            found.append(
                f"guest {g.name}: ksm_stat {g.kernel_pages} pages, exporter "
                f"{g.exported_pages}, dashboard {g.dashboard_bytes} bytes"
            )
        if g.always_included and not g.own_when_included:
            found.append(f"guest {g.name}: no series of its own although always-included")
    # limit=1: the host's top process only (a guest, or another process on this host).
    if attribution.limited_series != 1:
        found.append(f"--collector.process.limit=1 gave {attribution.limited_series} series")
    target = [g for g in attribution.guests if g.always_included]
    added = sum(1 for g in target if not g.own_under_limit)
    if attribution.included_series != attribution.limited_series + added:
        found.append(
            f"always-include added {attribution.included_series - attribution.limited_series}"
            f" series, not {added}"
        )
    rest = sum(g.kernel_pages for g in attribution.guests if not g.own_under_limit)
    if attribution.limit_other_pages < rest:
        found.append(f"limit=1: other holds {attribution.limit_other_pages}, guests left {rest}")
    if attribution.exported_total_pages != total:
        found.append(
            f"processes' merging pages sum to {attribution.exported_total_pages}, "
            f"pages_shared + pages_sharing is {total}"
        )
    if guests_pages > total:
        found.append(f"guests merged {guests_pages} pages, KSM shares only {total}")
    return found


def guest_names() -> tuple[str, str]:
    return (f"ksm-lab-{os.getpid()}-a", f"ksm-lab-{os.getpid()}-b")


@dataclass(frozen=True)
class PlatformGuest:
    """A guest started as one platform starts QEMU: under its binary's name, with its
    options and its -m, in its cgroup v2 path."""

    platform: str
    name: str
    argv0: str  # a link of this name to QEMU is what runs, so comm is this name too
    options: tuple[str, ...]
    memory: str  # -m, as the platform writes it
    cgroup: str
    labels: dict[str, str]  # the guest labels it must be served with; the others absent
    memory_bytes: int  # GUEST_MEMORY_MIB, in bytes


def systemd_escape(name: str) -> str:
    """systemd's escape of a unit name part, for the names used here ([a-z0-9-]): `-`."""
    return name.replace("-", "\\x2d")


def platform_guests(tag: int) -> tuple[PlatformGuest, PlatformGuest]:
    """A libvirt-style and a Proxmox-style guest, named after `tag` so runs do not clash.

    libvirt (src/qemu/qemu_command.c) writes -name guest=...,debug-threads=on, the domain
    UUID in -uuid and -m in KiB; machined's scope is named from qemu-<domain ID>-<name>, with
    libvirt 7.1+'s libvirt/emulator beneath (libvirt's docs/cgroups.rst). Its -S (start
    paused, resumed over QMP) is left out: nothing here would resume the guest. Proxmox's
    qemu-server starts /usr/bin/kvm with -name '<name>,debug-threads=on' and -m in MiB, in
    /qemu.slice/<vmid>.scope; its -id <vmid> is an option of Proxmox's own QEMU build, which
    Debian's QEMU refuses ("-id: invalid option"), so the guest has no vm_id here.
    """
    domain = f"instance-{tag:08x}"
    domain_id = tag % 1000 + 1
    guest_uuid = str(uuid.uuid4())  # as libvirt writes it: lower case
    vmid = tag % 900 + 100
    proxmox_name = f"web-{tag}"
    size = GUEST_MEMORY_MIB << 20
    return (
        PlatformGuest(
            "libvirt",
            domain,
            "qemu-system-x86_64",
            ("-name", f"guest={domain},debug-threads=on", "-uuid", guest_uuid),
            f"size={GUEST_MEMORY_MIB * 1024}k",
            f"/machine.slice/machine-{systemd_escape(f'qemu-{domain_id}-{domain}')}.scope"
            "/libvirt/emulator",
            {"vm": domain, "vm_uuid": guest_uuid},
            size,
        ),
        PlatformGuest(
            "proxmox",
            proxmox_name,
            "kvm",
            ("-name", f"{proxmox_name},debug-threads=on"),
            str(GUEST_MEMORY_MIB),
            f"/qemu.slice/{vmid}.scope",
            {"vm": proxmox_name},
            size,
        ),
    )


@dataclass
class PlatformFigures:
    guest: PlatformGuest
    pid: int
    cgroup_line: str  # the 0:: line of the QEMU process's /proc/<pid>/cgroup
    comm: str
    kernel_pages: int  # from the QEMU process's ksm_stat
    served: dict[str, str] | None  # the labels of its ksm_process_merging_pages series
    exported_pages: float | None
    guest_memory_bytes: float | None  # ksm_process_guest_memory_bytes


def _served(samples: Samples, name: str, pid: int) -> tuple[dict[str, str], float] | None:
    for (sample, labels), value in samples.items():
        if sample == name and dict(labels).get("pid") == str(pid):
            return dict(labels), value
    return None


def start_as(
    platform: PlatformGuest, vmlinuz: Path, image: Path, work: Path, cgroup: Path
) -> Guest:
    """QEMU started by a link named as the platform names it, with the platform's options
    and -m, and moved into the guest's cgroup (all its threads: cgroup.procs moves the
    process) long before anything reads it."""
    console = work / f"{platform.name}.console"
    console.unlink(missing_ok=True)
    link = work / platform.argv0
    link.unlink(missing_ok=True)
    command = tcg_command(vmlinuz, image, GUEST_MEMORY_MIB, host_merges=True)
    link.symlink_to(command[0])
    memory = command.index("-m") + 1
    command[memory] = platform.memory
    command = [str(link), *command[1:], *platform.options, "-serial", f"file:{console}"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    guest = Guest(platform.name, process, console)
    try:
        (cgroup / "cgroup.procs").write_text(str(process.pid))
    except OSError:
        stop([guest])
        raise
    return guest


def attribute_platform(platform: PlatformGuest, work: Path) -> PlatformFigures:
    """Boot the one guest in its cgroup, let KSM merge it, and read the kernel and the
    exporter while ksmd holds still."""
    reason = cgroup_v2_unwritable()
    if reason is not None:
        raise Unavailable(reason)
    kernel = fetch(SUITE)
    image = guest_image(work / "guest.cpio")
    with (
        host_ksm(),
        cgroup_v2(platform.cgroup) as cgroup,
        booted(
            lambda: [start_as(platform, kernel.vmlinuz, image, work, cgroup)],
            f"{platform.name} to boot",
        ) as running,
    ):
        (guest,) = running
        start = read_ksm("full_scans")
        eventually(lambda: read_ksm("full_scans") >= start + FULL_SCANS, 120, 0.5, "full scans")
        hold_still(running)
        kernel_pages = guest.merging_pages()
        cgroup_line = next(
            (line for line in _read(guest.pid, "cgroup").splitlines() if line.startswith("0::")),
            "",
        )
        comm = _read(guest.pid, "comm").strip()
        with running_exporter() as exporter:
            samples = parse_samples(exporter.get())
    pages = _served(samples, "ksm_process_merging_pages", guest.pid)
    memory = _served(samples, "ksm_process_guest_memory_bytes", guest.pid)
    return PlatformFigures(
        platform,
        guest.pid,
        cgroup_line,
        comm,
        kernel_pages,
        pages[0] if pages else None,
        pages[1] if pages else None,
        memory[1] if memory else None,
    )


GUEST_LABELS = ("vm", "vm_id", "vm_uuid", "namespace")


def platform_problems(figures: PlatformFigures) -> list[str]:
    """What does not hold of a platform-style guest; empty when it is served as set."""
    guest = figures.guest
    found = []
    if figures.cgroup_line != f"0::{guest.cgroup}":
        found.append(f"{guest.platform}: QEMU ran in {figures.cgroup_line!r}, not {guest.cgroup}")
    if figures.kernel_pages <= 0:
        found.append(f"{guest.platform}: guest {guest.name} merged nothing")
    if figures.served is None:
        return [*found, f"{guest.platform}: no series for pid {figures.pid}"]
    served_guest = {k: v for k, v in figures.served.items() if k in GUEST_LABELS}
    if served_guest != guest.labels:
        found.append(f"{guest.platform}: served {served_guest}, not {guest.labels}")
    if figures.served.get("cgroup") != guest.cgroup:
        found.append(f"{guest.platform}: cgroup {figures.served.get('cgroup')!r}")
    if figures.served.get("comm") != figures.comm:
        found.append(
            f"{guest.platform}: comm {figures.served.get('comm')!r}, /proc {figures.comm!r}"
        )
    if figures.exported_pages != figures.kernel_pages:
        found.append(
            f"{guest.platform}: {figures.exported_pages} merging pages served, ksm_stat"
            f" {figures.kernel_pages}"
        )
    if figures.guest_memory_bytes != guest.memory_bytes:
        found.append(
            f"{guest.platform}: guest memory {figures.guest_memory_bytes}, -m says"
            f" {guest.memory_bytes}"
        )
    return found


def platform_summary(figures: PlatformFigures, page_size: int) -> str:
    guest = figures.guest
    share = figures.kernel_pages * page_size / guest.memory_bytes
    return (
        f"{guest.platform}-style guest {guest.name}: {figures.kernel_pages} pages merged"
        f" ({share:.0%} of its -m {guest.memory}), served as {figures.served}"
    )

"""Tuners head to head on real KSM: one scripted workload under each policy, from the same start.

    python -m bench.tuners [--seconds 150] [--plot docs/images/tuners.png]

Each policy starts from a clean KSM (`run=2` unmerges everything, then the kernel's
defaults: 100 pages, 20 ms, advisor off) and sees the same workload, scaled down in time
(the steady full-scan target is 20 s instead of 200 s, ksmtuned's interval 6 s instead of
60 s, for every policy alike):

- at 0 s, two guests' worth of identical pages (2 x 48 MiB) register;
- all along, 8 MiB of them is rewritten every half second (volatile memory);
- at `boot`, a third guest (48 MiB) boots: new memory to merge;
- then nothing new until the end.

Per policy: ksmd CPU-seconds (schedstat), the saved-memory integral (GiB.s, saved =
(pages_sharing + ksm_zero_pages) x page size), the time to 90% of the final saved memory,
the time to 90% of the booted guest's pages merged, and the peak 10 s CPU share; ratios
against the kernel's scan-time advisor. Holds the host's KSM lock throughout and puts back
every setting it changed. Needs root and a host whose KSM is not in use.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

KSM = Path("/sys/kernel/mm/ksm")
LOCK_PATH = "/tmp/ksm-exporter-real-ksm.lock"  # the tests' lock: one user of real KSM at a time
SETTINGS = ("pages_to_scan", "sleep_millisecs", "advisor_mode", "advisor_target_scan_time", "run")
MIB = 1 << 20
GIB = 1 << 30
GUEST_BYTES = 48 * MIB
VOLATILE_BYTES = 8 * MIB
STEADY_SECONDS = 20  # the steady full-scan target, scaled from the advisor's 200 s
KSMTUNED_INTERVAL = 6  # scaled from its 60 s
STEP = 0.5  # seconds between samples
PAGE = os.sysconf("SC_PAGE_SIZE")

# A guest: identical pages (a few distinct contents, as zeroed and common pages in a real
# guest are), registered with KSM; with an argument `volatile` it also rewrites a part of
# them with fresh bytes twice a second.
GUEST = r"""
import mmap, os, sys, time
size, volatile = int(sys.argv[1]), int(sys.argv[2])
page = mmap.PAGESIZE
area = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
contents = [bytes([i]) * page for i in range(1, 17)]
for n, offset in enumerate(range(0, size, page)):
    area[offset:offset + page] = contents[n % len(contents)]
area.madvise(mmap.MADV_MERGEABLE)
print("ready", flush=True)
while True:
    if volatile:
        for offset in range(0, volatile, page):
            area[offset:offset + 16] = os.urandom(16)
    time.sleep(0.5)
"""


@dataclass
class Policy:
    name: str
    settings: dict[str, str] = field(default_factory=dict)  # written before the workload
    command: list[str] | None = None  # a tuner process started with the workload


def policies(exporter: list[str]) -> list[Policy]:
    ksmtuned_env = ["env", f"KSM_MONITOR_INTERVAL={KSMTUNED_INTERVAL}"]
    return [
        Policy("kernel defaults"),
        Policy("ksmtuned", command=[*ksmtuned_env, "/usr/sbin/ksmtuned"]),
        Policy("advisor (defaults)", {"advisor_mode": "scan-time"}),
        Policy(
            f"advisor ({STEADY_SECONDS} s target)",
            {"advisor_mode": "scan-time", "advisor_target_scan_time": str(STEADY_SECONDS)},
        ),
        Policy(
            "ksm-exporter tune",
            command=[*exporter, "tune", f"--tuning.steady-full-scan-seconds={STEADY_SECONDS}"],
        ),
    ]


def read(name: str) -> str:
    return (KSM / name).read_text().strip()


def write(name: str, value: str) -> None:
    (KSM / name).write_text(f"{value}\n")


def ksmd_pid() -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "ksmd":
                    return int(entry.name)
    raise SystemExit("bench.tuners: no ksmd thread")


def ksmd_cpu_ns(pid: int) -> int:
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def saved_bytes() -> int:
    zero = int(read("ksm_zero_pages")) if (KSM / "ksm_zero_pages").exists() else 0
    return (int(read("pages_sharing")) + zero) * PAGE


@contextlib.contextmanager
def host_ksm() -> Iterator[None]:
    """The lock, and every setting as it was afterwards."""
    with open(LOCK_PATH, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        saved = {name: read(name) for name in SETTINGS if (KSM / name).exists()}
        try:
            yield
        finally:
            write("advisor_mode", "none")
            for name, value in saved.items():
                if name != "run":
                    write(name, active_mode(value) if name == "advisor_mode" else value)
            write("run", "2")
            write("run", saved["run"])


def active_mode(modes: str) -> str:
    """`[none] scan-time` -> `none`."""
    return modes.split("[")[1].split("]", maxsplit=1)[0]


def clean_start() -> None:
    write("advisor_mode", "none")
    write("run", "2")  # unmerges everything and frees every rmap item
    write("pages_to_scan", "100")
    write("sleep_millisecs", "20")
    if (KSM / "advisor_target_scan_time").exists():
        write("advisor_target_scan_time", "200")


def start_guest(volatile: int) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", GUEST, str(GUEST_BYTES), str(volatile)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    if child.stdout.readline().strip() != "ready":
        raise SystemExit("bench.tuners: a guest did not start")
    return child


@dataclass
class Run:
    policy: str
    times: list[float] = field(default_factory=list)
    saved: list[int] = field(default_factory=list)
    cpu_ns: list[int] = field(default_factory=list)
    pages_to_scan: list[int] = field(default_factory=list)
    boot_at: float = 0.0

    @property
    def cpu_seconds(self) -> float:
        return (self.cpu_ns[-1] - self.cpu_ns[0]) / 1e9

    @property
    def saved_integral(self) -> float:
        """GiB.s of saved memory."""
        pairs = zip(self.times, self.times[1:], self.saved, strict=False)
        return sum((b - a) * s for a, b, s in pairs) / GIB

    def time_to(self, share: float, since: float = 0.0) -> float | None:
        base = next(s for t, s in zip(self.times, self.saved, strict=True) if t >= since)
        goal = base + share * (self.saved[-1] - base)
        if self.saved[-1] <= base:
            return None
        for t, s in zip(self.times, self.saved, strict=True):
            if t >= since and s >= goal:
                return t - since
        return None

    def peak_share(self, seconds: float = 10.0) -> float:
        span = round(seconds / STEP)
        shares = [
            (self.cpu_ns[i + span] - self.cpu_ns[i]) / 1e9 / (self.times[i + span] - self.times[i])
            for i in range(len(self.times) - span)
        ]
        return max(shares, default=0.0)


def run_policy(policy: Policy, seconds: float, boot: float) -> Run:
    clean_start()
    # The first guests run before the policy starts, as on a host where it is switched on.
    guests = [start_guest(VOLATILE_BYTES), start_guest(0)]
    for name, value in policy.settings.items():
        write(name, value)
    write("run", "1")
    ksmd = ksmd_pid()
    tuner = None
    if policy.command:
        # A session of its own: ksmtuned runs its loop in a background subshell and exits,
        # so the loop is stopped through the process group, not the pid started.
        tuner = subprocess.Popen(
            policy.command,
            stdout=subprocess.DEVNULL,
            stderr=sys.stderr,
            start_new_session=True,
            env={**os.environ, "PIDFILE": os.devnull},
        )
    result = Run(policy.name, boot_at=boot)
    start = time.monotonic()
    try:
        while (now := time.monotonic() - start) < seconds:
            if len(guests) == 2 and now >= boot:
                guests.append(start_guest(0))
            result.times.append(now)
            result.saved.append(saved_bytes())
            result.cpu_ns.append(ksmd_cpu_ns(ksmd))
            result.pages_to_scan.append(int(read("pages_to_scan")))
            time.sleep(max(0.0, start + len(result.times) * STEP - time.monotonic()))
    finally:
        if tuner is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(tuner.pid, signal.SIGTERM)
            tuner.wait(10)
        for guest in guests:
            guest.kill()
            guest.wait()
    return result


def report(runs: list[Run]) -> str:
    advisor = next((r for r in runs if r.policy == "advisor (defaults)"), runs[0])
    lines = [
        "| policy | ksmd CPU-s | vs advisor | saved GiB.s | vs advisor | to 90% saved | "
        "boot guest to 90% | peak 10 s CPU | pages_to_scan at the end |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def seconds(value: float | None) -> str:
        return "never" if value is None else f"{value:.1f} s"

    for r in runs:
        cpu_vs = r.cpu_seconds / advisor.cpu_seconds if advisor.cpu_seconds else float("nan")
        saved_vs = r.saved_integral / advisor.saved_integral if advisor.saved_integral else 0.0
        lines.append(
            f"| {r.policy} | {r.cpu_seconds:.2f} | {cpu_vs:.2f} | {r.saved_integral:.2f} | "
            f"{saved_vs:.2f} | {seconds(r.time_to(0.9))} | "
            f"{seconds(r.time_to(0.9, r.boot_at))} | {r.peak_share():.1%} | "
            f"{r.pages_to_scan[-1]} |"
        )
    return "\n".join(lines)


def plot(runs: list[Run], path: str) -> None:
    figure, (saved, cpu) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    span = round(10 / STEP)
    for r in runs:
        saved.plot(r.times, [s / MIB for s in r.saved], label=r.policy)
        shares = [
            (r.cpu_ns[i] - r.cpu_ns[i - span]) / 1e9 / (r.times[i] - r.times[i - span])
            for i in range(span, len(r.times))
        ]
        cpu.plot(r.times[span:], [100 * s for s in shares], label=r.policy)
    saved.set_ylabel("saved memory (MiB)")
    cpu.set_ylabel("ksmd CPU, 10 s mean (%)")
    cpu.set_xlabel("seconds (a third guest boots at the dashed line)")
    for axes in (saved, cpu):
        axes.axvline(runs[0].boot_at, linestyle="--", color="grey")
        axes.grid(alpha=0.3)
    saved.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=80)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=150.0)
    parser.add_argument("--boot", type=float, default=50.0, help="when the third guest boots")
    parser.add_argument("--plot", help="write a PNG of saved memory and ksmd CPU over time")
    parser.add_argument("--only", action="append", help="run only the policies named")
    args = parser.parse_args()
    if os.geteuid() != 0 or not os.access(KSM / "run", os.W_OK):
        print("bench.tuners: needs root and a writable /sys/kernel/mm/ksm", file=sys.stderr)
        return 1
    exporter = [sys.executable, "-m", "ksm_exporter"]
    chosen = [p for p in policies(exporter) if not args.only or p.name in args.only]
    runs = []
    with host_ksm():
        for policy in chosen:
            print(f"running: {policy.name} ({args.seconds:.0f} s)", file=sys.stderr, flush=True)
            runs.append(run_policy(policy, args.seconds, args.boot))
    print(report(runs))
    if args.plot:
        plot(runs, args.plot)
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

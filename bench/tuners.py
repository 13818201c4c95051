"""Tuners head to head on real KSM: the kernel's scan-time advisor and `ksm-exporter tune`,
each at its defaults, on workloads a real host has, each repeated, medians reported.

    python -m bench.tuners [--seconds 60] [--repeats 3] [--workload NAME] [--plots DIR]

Every run starts from the same clean KSM (`run=2` unmerges everything, then the kernel's
defaults: 100 pages, 20 ms, advisor off) and the same warm-up: a small host (16 MiB of
identical pages) is registered, KSM runs, the policy is switched on, and the run starts
only `--warmup` seconds later. So the advisor's first full scan, which would otherwise
divide all of ksmd's CPU time since boot by one scan's pages (scan_time_advisor() starts
from advisor_ctx.cpu_time = 0), is over before anything is measured, and the tuner has
calibrated on the same small host. Policies at their defaults: the advisor with its 200 s
target and 70% max CPU, the tuner with its own flags' defaults (a state file in a fresh
directory per run, so a restart within a run finds it).

Workloads (sizes scaled to this 2-core test machine; the same for both policies):
- `late-guests`: a large tenant whose memory never merges (256 MiB of distinct pages)
  registers at 0 s; two identical guests (2 x 64 MiB) boot at a third of the run;
- `new-guest`: two identical guests at 0 s; a third boots at half the run, on a host the
  policy has settled;
- `duplicates-form`: 128 MiB registered at 0 s with distinct content; at a third of the run
  the process writes identical pages over it (a guest zeroing freed pages, swap-ins);
- `distinct-only`: 256 MiB of distinct pages for the whole run;
- `come-and-go`: 64 MiB guests boot at 0, 1/4 and 1/2 of the run; the first exits at 3/8
  and the second at 5/8;
- `tuner-restart`: two identical guests at 0 s; the tuner is stopped (SIGTERM) at 2/5 of
  the run and started again 2 s later; a third guest boots at half the run. The advisor's
  run sees the same guests.

Per run: ksmd CPU-seconds (schedstat), the saved-memory integral (GiB.s, saved = the
workload's processes' ksm_merging_pages x page size: on a shared host pages_sharing counts
other processes' merged memory too), the time from each arrival of mergeable
memory until that process has 90% of its pages merged (its ksm_merging_pages), the peak
ksmd CPU share over any 10 s window, the tuner's exit status (None while it ran to the end
and stopped on SIGTERM with 0) and `run` at the end. The report gives each figure's median
over the repeats and the tuner's ratios against the advisor. The real-KSM lock is held per
run, not for the whole bench, and every setting is put back after each run.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from harness.real_ksm import ksm_lock

KSM = Path("/sys/kernel/mm/ksm")
SETTINGS = ("pages_to_scan", "sleep_millisecs", "advisor_mode", "advisor_target_scan_time", "run")
MIB = 1 << 20
GIB = 1 << 30
PAGE = os.sysconf("SC_PAGE_SIZE")
STEP = 0.5  # seconds between samples
WINDOW = 10.0  # the CPU share's window
BUDGET = 0.1  # the tuner's default --tuning.cpu-budget
GUEST = 64 * MIB
TENANT = 256 * MIB
WARM_HOST = 16 * MIB

# A process with memory registered with KSM. `identical`: pages of 16 contents, as zeroed
# and common pages of a real guest; `distinct`: every page different; `late`: distinct,
# then after `delay` seconds identical content written over it.
WORKER = r"""
import mmap, os, sys, time
size, kind, delay = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
page = mmap.PAGESIZE
area = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
contents = [bytes([i]) * page for i in range(1, 17)]
def identical():
    for n, offset in enumerate(range(0, size, page)):
        area[offset:offset + page] = contents[n % len(contents)]
def distinct():
    for offset in range(0, size, 1 << 20):
        area[offset:offset + (1 << 20)] = os.urandom(1 << 20)
identical() if kind == "identical" else distinct()
area.madvise(mmap.MADV_MERGEABLE)
print("ready", flush=True)
if kind == "late":
    time.sleep(delay)
    identical()
    print("formed", flush=True)
while True:
    time.sleep(3600)
"""


@dataclass(frozen=True)
class Event:
    at: float  # share of the run
    action: str  # "start", "stop", "restart-tuner"
    name: str = ""  # the process started or stopped
    size: int = 0
    kind: str = "identical"  # identical, distinct, late
    forms_at: float = 0.0  # for "late": share of the run at which duplicates form


@dataclass(frozen=True)
class Workload:
    name: str
    events: tuple[Event, ...]


WORKLOADS = (
    Workload(
        "late-guests",
        (
            Event(0.0, "start", "tenant", TENANT, "distinct"),
            Event(1 / 3, "start", "guest-1", GUEST),
            Event(1 / 3, "start", "guest-2", GUEST),
        ),
    ),
    Workload(
        "new-guest",
        (
            Event(0.0, "start", "guest-1", GUEST),
            Event(0.0, "start", "guest-2", GUEST),
            Event(0.5, "start", "guest-3", GUEST),
        ),
    ),
    Workload(
        "duplicates-form",
        (Event(0.0, "start", "old", 2 * GUEST, "late", forms_at=1 / 3),),
    ),
    Workload("distinct-only", (Event(0.0, "start", "tenant", TENANT, "distinct"),)),
    Workload(
        "come-and-go",
        (
            Event(0.0, "start", "guest-1", GUEST),
            Event(0.25, "start", "guest-2", GUEST),
            Event(0.375, "stop", "guest-1"),
            Event(0.5, "start", "guest-3", GUEST),
            Event(0.625, "stop", "guest-2"),
        ),
    ),
    Workload(
        "tuner-restart",
        (
            Event(0.0, "start", "guest-1", GUEST),
            Event(0.0, "start", "guest-2", GUEST),
            Event(0.4, "restart-tuner"),
            Event(0.5, "start", "guest-3", GUEST),
        ),
    ),
)


def read(name: str) -> str:
    return (KSM / name).read_text().strip()


def write(name: str, value: str) -> None:
    (KSM / name).write_text(f"{value}\n")


def active_mode(modes: str) -> str:
    """`[none] scan-time` -> `none`."""
    return modes.split("[")[1].split("]", maxsplit=1)[0]


@contextlib.contextmanager
def host_ksm() -> Iterator[None]:
    """The lock for one run, and every setting as it was afterwards."""
    with ksm_lock():
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


def clean_start() -> None:
    write("advisor_mode", "none")
    write("run", "2")  # unmerges everything and frees every rmap item
    write("pages_to_scan", "100")
    write("sleep_millisecs", "20")
    write("advisor_target_scan_time", "200")


def ksmd_pid() -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "ksmd":
                    return int(entry.name)
    raise SystemExit("bench.tuners: no ksmd thread")


def ksmd_cpu_ns(pid: int) -> int:
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def foreign_registered(own: set[int]) -> int:
    """Processes registered with KSM that are not this run's: their memory would be scanned
    by ksmd beside the workload's, and the run's figures would not be the workload's alone."""
    count = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in own:
            continue
        with contextlib.suppress(OSError, ValueError):
            fields = dict(
                line.split(maxsplit=1) for line in (entry / "ksm_stat").read_text().splitlines()
            )
            if fields.get("ksm_mergeable:", "").strip() == "yes" or int(
                fields.get("ksm_rmap_items", 0)
            ):
                count += 1
    return count


def merging_pages(pid: int) -> int:
    """The process's ksm_merging_pages; 0 once it is gone."""
    try:
        text = Path(f"/proc/{pid}/ksm_stat").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "ksm_merging_pages":
            return int(value)
    return 0


class Worker:
    def __init__(self, size: int, kind: str, delay: float) -> None:
        self.size = size
        self.process = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(size), kind, str(delay)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "ready":
            raise SystemExit("bench.tuners: a workload process did not start")

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


@dataclass
class Policy:
    name: str
    settings: dict[str, str] = field(default_factory=dict)  # written at the warm-up's start
    command: list[str] | None = None  # a tuner started at the warm-up's start


def policies(exporter: list[str]) -> list[Policy]:
    return [
        Policy("advisor", {"advisor_mode": "scan-time"}),
        Policy("ksm-exporter tune", command=[*exporter, "tune"]),
    ]


def tuner_flags(exporter: list[str], state_dir: str) -> list[str]:
    """The state file in this run's own directory, where the tuner has one."""
    help_text = subprocess.run(
        [*exporter, "tune", "--help"], capture_output=True, text=True, check=False
    ).stdout
    if "--tuning.state-file" in help_text:
        return [f"--tuning.state-file={os.path.join(state_dir, 'tune.json')}"]
    return []


class Tuner:
    """The tuner as a service manager runs it: its own process group, stopped by SIGTERM."""

    def __init__(self, command: list[str]) -> None:
        self.command = command
        self.process: subprocess.Popen[bytes] | None = None
        self.exit_status: int | None = None  # set where it ended on its own

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=sys.stderr, start_new_session=True
        )

    def ended_on_its_own(self) -> bool:
        if self.process is not None and self.exit_status is None:
            status = self.process.poll()
            if status is not None:
                self.exit_status = status
        return self.exit_status is not None

    def stop(self) -> int | None:
        """SIGTERM; its exit status (0 is a clean stop)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        return process.wait(10)


@dataclass
class Arrival:
    name: str
    at: float  # seconds into the run
    pid: int
    pages: int
    merged_at: float | None = None  # seconds after `at` until 90% of its pages merged


@dataclass
class Run:
    workload: str
    policy: str
    times: list[float] = field(default_factory=list)
    saved: list[int] = field(default_factory=list)
    cpu_ns: list[int] = field(default_factory=list)
    pages_to_scan: list[int] = field(default_factory=list)
    arrivals: list[Arrival] = field(default_factory=list)
    foreign: int = 0  # most processes of others registered with KSM at any sample
    exit_status: int | None = None  # the tuner's, where it ended on its own
    stop_status: int | None = None  # the tuner's answer to the final SIGTERM
    final_run: int = 0

    @property
    def cpu_seconds(self) -> float:
        return (self.cpu_ns[-1] - self.cpu_ns[0]) / 1e9

    @property
    def saved_integral(self) -> float:
        """GiB.s of saved memory."""
        pairs = zip(self.times, self.times[1:], self.saved, strict=False)
        return sum((b - a) * s for a, b, s in pairs) / GIB

    def shares(self) -> list[tuple[float, float]]:
        """(end of window, ksmd's CPU share over the WINDOW seconds before it)."""
        span = round(WINDOW / STEP)
        return [
            (
                self.times[i],
                (self.cpu_ns[i] - self.cpu_ns[i - span])
                / 1e9
                / (self.times[i] - self.times[i - span]),
            )
            for i in range(span, len(self.times))
        ]

    def peak_share(self) -> float:
        return max((share for _, share in self.shares()), default=0.0)

    def slowest_arrival(self) -> float | None:
        """The longest time to 90% merged over the arrivals; inf where one never got there."""
        if not self.arrivals:
            return None
        return max(math.inf if a.merged_at is None else a.merged_at for a in self.arrivals)


class Session:
    """One run of a workload under a policy: its processes, the tuner, what is measured."""

    def __init__(self, workload: Workload, policy: Policy, seconds: float) -> None:
        self.seconds = seconds
        self.pending = sorted(workload.events, key=lambda e: e.at)
        self.result = Run(workload.name, policy.name)
        self.workers: dict[str, Worker] = {}
        self.tuner: Tuner | None = None
        self.forming: list[tuple[float, Arrival]] = []  # (when duplicates form, arrival)

    def due(self, now: float) -> None:
        """The workload's events up to `now`, and the duplicates that formed by then."""
        while self.pending and self.pending[0].at * self.seconds <= now:
            self.apply(self.pending.pop(0), now)
        for formed, arrival in list(self.forming):
            if formed <= now:
                arrival.at = now
                self.result.arrivals.append(arrival)
                self.forming.remove((formed, arrival))

    def apply(self, event: Event, now: float) -> None:
        if event.action == "start":
            formed = event.forms_at * self.seconds
            worker = Worker(event.size, event.kind, max(0.0, formed - now))
            self.workers[event.name] = worker
            arrival = Arrival(event.name, now, worker.pid, event.size // PAGE)
            if event.kind == "identical":
                self.result.arrivals.append(arrival)
            elif event.kind == "late":
                self.forming.append((formed, arrival))
        elif event.action == "stop":
            self.workers.pop(event.name).stop()
        elif event.action == "restart-tuner" and self.tuner is not None:
            self.tuner.stop()
            time.sleep(2)
            self.tuner.start()

    def own_pids(self) -> set[int]:
        pids = {os.getpid(), *(w.pid for w in self.workers.values())}
        if self.tuner is not None and self.tuner.process is not None:
            pids.add(self.tuner.process.pid)
        return pids

    def sample(self, now: float, ksmd: int, own: set[int]) -> None:
        result = self.result
        if len(result.times) % round(WINDOW / STEP) == 0:  # a walk of /proc every 10 s
            result.foreign = max(result.foreign, foreign_registered(own | self.own_pids()))
        for arrival in result.arrivals:
            if arrival.merged_at is None and merging_pages(arrival.pid) >= 0.9 * arrival.pages:
                arrival.merged_at = now - arrival.at
        if self.tuner is not None and self.tuner.ended_on_its_own():
            result.exit_status = self.tuner.exit_status
        result.times.append(now)
        result.saved.append(self.saved_bytes())
        result.cpu_ns.append(ksmd_cpu_ns(ksmd))
        result.pages_to_scan.append(int(read("pages_to_scan")))

    def saved_bytes(self) -> int:
        """The workload's own merged memory: its processes' ksm_merging_pages. On a shared
        host other processes' memory registered with KSM merges too, and pages_sharing would
        count it; ksmd's CPU, which cannot be split, still counts their scanning."""
        return sum(merging_pages(worker.pid) for worker in self.workers.values()) * PAGE

    def close(self) -> None:
        if self.tuner is not None:
            self.result.stop_status = self.tuner.stop()
        for worker in self.workers.values():
            worker.stop()


def run_once(
    workload: Workload, policy: Policy, seconds: float, warmup: float, exporter: list[str]
) -> Run:
    session = Session(workload, policy, seconds)
    with host_ksm(), tempfile.TemporaryDirectory(prefix="ksm-tune-bench-") as state_dir:
        clean_start()
        warm = Worker(WARM_HOST, "identical", 0)
        try:
            write("run", "1")
            for name, value in policy.settings.items():
                write(name, value)
            if policy.command is not None:
                session.tuner = Tuner([*policy.command, *tuner_flags(exporter, state_dir)])
                session.tuner.start()
            time.sleep(warmup)  # the same warm-up for every policy, before anything counts
            ksmd = ksmd_pid()
            start = time.monotonic()
            while (now := time.monotonic() - start) < seconds:
                session.due(now)
                session.sample(now, ksmd, {warm.pid})
                next_at = start + len(session.result.times) * STEP
                time.sleep(max(0.0, next_at - time.monotonic()))
            session.result.final_run = int(read("run"))
        finally:
            session.close()
            warm.stop()
    return session.result


@dataclass
class Summary:
    workload: str
    policy: str
    cpu_seconds: float
    saved_integral: float
    slowest_arrival: float | None
    peak_share: float
    exit_statuses: list[int | None]
    final_runs: list[int]
    foreign: int


def median_of(runs: list[Run], figure: Callable[[Run], float | None]) -> float | None:
    values = [v for r in runs if (v := figure(r)) is not None]
    return statistics.median(values) if values else None


def summarise(runs: list[Run]) -> Summary:
    first = runs[0]
    return Summary(
        first.workload,
        first.policy,
        median_of(runs, lambda r: r.cpu_seconds) or 0.0,
        median_of(runs, lambda r: r.saved_integral) or 0.0,
        median_of(runs, Run.slowest_arrival),
        median_of(runs, Run.peak_share) or 0.0,
        [r.exit_status for r in runs],
        [r.final_run for r in runs],
        max(r.foreign for r in runs),
    )


def report(summaries: list[Summary]) -> str:
    lines = [
        "| workload | policy | ksmd CPU-s | vs advisor | saved GiB.s | vs advisor | "
        "slowest arrival to 90% merged | peak 10 s CPU | exited on its own | run at the end |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    advisors = {s.workload: s for s in summaries if s.policy == "advisor"}

    def seconds(value: float | None) -> str:
        if value is None:
            return "-"
        return "never" if value == math.inf else f"{value:.1f} s"

    for s in summaries:
        base = advisors.get(s.workload)
        cpu_vs = f"{s.cpu_seconds / base.cpu_seconds:.2f}" if base and base.cpu_seconds else "-"
        saved_vs = (
            f"{s.saved_integral / base.saved_integral:.2f}" if base and base.saved_integral else "-"
        )
        exits = ", ".join("no" if e is None else f"exit {e}" for e in s.exit_statuses)
        runs = ", ".join(str(r) for r in s.final_runs)
        lines.append(
            f"| {s.workload} | {s.policy} | {s.cpu_seconds:.2f} | {cpu_vs} | "
            f"{s.saved_integral:.3f} | {saved_vs} | {seconds(s.slowest_arrival)} | "
            f"{s.peak_share:.1%} | {exits} | {runs} |"
        )
    return "\n".join(lines)


def verdicts(summaries: list[Summary]) -> list[str]:
    """The goals, workload by workload: what the tuner met and what it missed, by how much."""
    advisors = {s.workload: s for s in summaries if s.policy == "advisor"}
    lines = []
    for s in summaries:
        base = advisors.get(s.workload)
        if s.policy == "advisor" or base is None:
            continue
        missed = []
        if base.saved_integral and s.saved_integral < 0.95 * base.saved_integral:
            missed.append(f"saved {s.saved_integral / base.saved_integral:.0%} of the advisor's")
        if base.cpu_seconds and s.cpu_seconds > 0.5 * base.cpu_seconds:
            missed.append(f"CPU {s.cpu_seconds / base.cpu_seconds:.0%} of the advisor's")
        if s.peak_share > 1.25 * BUDGET:
            missed.append(f"peak 10 s CPU {s.peak_share:.1%} > 1.25 x {BUDGET:.0%}")
        if any(r != 1 for r in s.final_runs):
            missed.append(f"run at the end {s.final_runs}")
        if any(e is not None for e in s.exit_statuses):
            missed.append(f"exited on its own {s.exit_statuses}")
        if s.foreign or base.foreign:
            missed.append(
                f"NOT ALONE: up to {max(s.foreign, base.foreign)} other processes registered "
                "with KSM during a run (figures include ksmd's work on them)"
            )
        lines.append(f"{s.workload}: " + ("all goals met" if not missed else "; ".join(missed)))
    return lines


def plot(runs: list[Run], path: str) -> None:
    """Saved memory and the 10 s CPU share over time, the first repeat of each policy."""
    figure, (saved, cpu) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    seen: set[str] = set()
    for r in runs:
        if r.policy in seen:
            continue
        seen.add(r.policy)
        saved.plot(r.times, [s / MIB for s in r.saved], label=r.policy)
        shares = r.shares()
        cpu.plot([t for t, _ in shares], [100 * s for _, s in shares], label=r.policy)
        for arrival in r.arrivals:
            saved.axvline(arrival.at, linestyle="--", color="grey", linewidth=0.8)
    cpu.axhline(100 * BUDGET, linestyle=":", color="black", linewidth=0.8)
    saved.set_ylabel("saved memory (MiB)")
    cpu.set_ylabel("ksmd CPU, 10 s mean (%)")
    cpu.set_xlabel(f"seconds ({runs[0].workload}; dashed: mergeable memory arrives)")
    for axes in (saved, cpu):
        axes.grid(alpha=0.3)
    saved.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="each run's length")
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workload", action="append", help="only the workloads named")
    parser.add_argument("--plots", help="a directory for one PNG a workload")
    args = parser.parse_args()
    if os.geteuid() != 0 or not os.access(KSM / "run", os.W_OK):
        print("bench.tuners: needs root and a writable /sys/kernel/mm/ksm", file=sys.stderr)
        return 1
    if not (KSM / "advisor_mode").exists():
        print("bench.tuners: this kernel has no scan-time advisor to compare with", file=sys.stderr)
        return 1
    exporter = [sys.executable, "-m", "ksm_exporter"]
    chosen = [w for w in WORKLOADS if not args.workload or w.name in args.workload]
    summaries: list[Summary] = []
    for workload in chosen:
        runs: dict[str, list[Run]] = {}
        for repeat in range(args.repeats):
            for policy in policies(exporter):
                print(
                    f"{workload.name}, {policy.name}, repeat {repeat + 1}",
                    file=sys.stderr,
                    flush=True,
                )
                run = run_once(workload, policy, args.seconds, args.warmup, exporter)
                runs.setdefault(policy.name, []).append(run)
        summaries.extend(summarise(r) for r in runs.values())
        if args.plots:
            os.makedirs(args.plots, exist_ok=True)
            path = os.path.join(args.plots, f"tuners-{workload.name}.png")
            plot([r for rs in runs.values() for r in rs], path)
            print(f"plot: {path}", file=sys.stderr)
    print(report(summaries))
    print()
    print("\n".join(verdicts(summaries)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

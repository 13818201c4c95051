"""The real ksmtuned script beside `status`: what `status` says ksmtuned would set is what
Debian's /usr/sbin/ksmtuned (package ksmtuned) sets on the same host at the same time.

The script reads its settings from the environment after sourcing /etc/ksmtuned.conf
(`KSM_MONITOR_INTERVAL=${KSM_MONITOR_INTERVAL:-60}`, `PIDFILE=${PIDFILE-...}`, `DEBUG` and
`LOGFILE` as they are), so the test sets them there: a 1 s interval and a log of its own,
where `debug` writes `<date>: <what>` lines: `thres N` and `sleep N` at the start, then each
interval `committed C free F` and either `... stop ksm` or `KSMCTL start PAGES SLEEP`.

It runs twice: on this host as it is, and on a host under memory pressure, shown to both the
script and `status` by a meminfo bind-mounted over /proc/meminfo in a private mount
namespace they share (`unshare -m`, then `nsenter` for `status`), so the script's boost,
its clamp and its sleep scaling run for real. Real KSM: the script writes run,
pages_to_scan and sleep_millisecs; the lock is held and they are restored afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.eventually import eventually
from harness.real_ksm import KsmControl, ksm_control, read_advisor_mode, read_ksm

pytestmark = pytest.mark.realksm

KSMTUNED = "/usr/sbin/ksmtuned"
CONF = "/etc/ksmtuned.conf"
SETTINGS = ("KSM_MONITOR_INTERVAL", "DEBUG", "LOGFILE", "PIDFILE")
# Seconds between its decisions: on this host as it is, 1; under pressure 4, longer than a
# status run (about 1 s), so status can read the pages it wrote between two of its writes.
INTERVAL = 1
PRESSED_INTERVAL = 4
# A 4 GiB host with 400,000 kB free: under 20% of MemTotal (838,860 kB), so it boosts, and
# sleeps 10 ms x 16 GiB / 4 GiB.
PRESSED_MEMINFO = (
    "MemTotal:        4194304 kB\n"
    "MemFree:          300000 kB\n"
    "MemAvailable:     400000 kB\n"
    "Buffers:               0 kB\n"
    "Cached:           100000 kB\n"
)
START = re.compile(r"KSMCTL start (\d+) (\d+)$")


def skip_reason() -> str | None:
    if not os.path.exists(KSMTUNED):
        return f"{KSMTUNED} is missing: apt-get install ksmtuned"
    if os.geteuid() != 0:
        return "ksmtuned writes /sys/kernel/mm/ksm: needs root"
    try:
        with open(CONF) as conf:
            assigned = [
                line.split("=", 1)[0].strip()
                for line in conf
                if "=" in line and not line.lstrip().startswith("#")
            ]
    except FileNotFoundError:
        assigned = []
    if assigned:
        # The conf file is sourced first and its assignments win over the environment.
        return f"{CONF} sets {', '.join(assigned)}: the script would not run as this test says"
    return None


@dataclass
class Log:
    path: Path

    def lines(self) -> list[str]:
        """What `debug` wrote, without the date (`/bin/date` has no ': ' in it)."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        return [line.split(": ", 1)[1] for line in text.splitlines() if ": " in line]

    def first(self, name: str) -> int:
        """`thres N` or `sleep N`, written once at the start."""
        value = next(line.split()[1] for line in self.lines() if line.startswith(name + " "))
        return int(value)

    def decisions(self) -> list[tuple[int, int] | None]:
        """Each interval's: (pages, sleep) where it started KSM, None where it stopped it."""
        found: list[tuple[int, int] | None] = []
        for line in self.lines():
            if line.endswith("stop ksm"):
                found.append(None)
            elif match := START.match(line):
                found.append((int(match[1]), int(match[2])))
        return found

    def committed_kib(self) -> list[int]:
        return [int(line.split()[1]) for line in self.lines() if line.startswith("committed ")]


@dataclass
class Ksmtuned:
    group: int  # the process group it and its loop run in
    log: Log
    pid_file: Path

    @property
    def loop_pid(self) -> int:
        """The backgrounded `loop`, which the script writes to its PIDFILE."""
        return int(self.pid_file.read_text())


@contextlib.contextmanager
def running_ksmtuned(
    directory: Path, meminfo: Path | None = None, interval: int = INTERVAL
) -> Iterator[Ksmtuned]:
    log, pid_file = directory / "ksmtuned.log", directory / "ksmtuned.pid"
    env = {
        **os.environ,
        "KSM_MONITOR_INTERVAL": str(interval),
        "DEBUG": "1",
        "LOGFILE": str(log),
        "PIDFILE": str(pid_file),
    }
    command = [KSMTUNED]
    if meminfo is not None:
        command = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            'mount --bind "$0" /proc/meminfo && exec "$1"',
            str(meminfo),
            KSMTUNED,
        ]
    # Its own session: the script backgrounds its loop (`loop &`) and exits, so the loop and
    # its `sleep`s are stopped through the process group, not the pid started.
    started = subprocess.Popen(
        command, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=sys.stderr
    )
    tuner = Ksmtuned(started.pid, Log(log), pid_file)
    try:
        assert started.wait(30) == 0, "ksmtuned did not start"
        eventually(lambda: pid_file.exists() and pid_file.read_text().strip(), 10, what="PIDFILE")
        yield tuner
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(tuner.group, signal.SIGTERM)
        with contextlib.suppress(ValueError, OSError, ProcessLookupError):
            os.kill(tuner.loop_pid, signal.SIGTERM)
        eventually(lambda: not group_alive(tuner.group), 10, what="ksmtuned's group gone")


def group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def comm(pid: int) -> str:
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def status_others(
    namespace_of: int | None = None, meminfo: Path | None = None
) -> dict[str, dict[str, object]]:
    """`status --json`'s other tuners: in the mount namespace of pid `namespace_of`, or in a
    new one with `meminfo` over /proc/meminfo."""
    command = [sys.executable, "-m", "ksm_exporter", "status", "--json", "--window", "0.2"]
    if namespace_of is not None:
        command = ["nsenter", f"--mount=/proc/{namespace_of}/ns/mnt", "--", *command]
    if meminfo is not None:
        command = [
            *("unshare", "--mount", "--propagation", "private", "sh", "-c"),
            'mount --bind "$0" /proc/meminfo && exec "$@"',
            str(meminfo),
            *command,
        ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    others: dict[str, dict[str, object]] = json.loads(result.stdout)["advice"]["others"]
    return others


def status_ksmtuned(
    namespace_of: int | None = None, meminfo: Path | None = None
) -> dict[str, object]:
    """`status --json`'s entry for the ksmtuned that runs."""
    return status_others(namespace_of, meminfo)["ksmtuned"]


@pytest.fixture
def ksm() -> Iterator[KsmControl]:
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    with ksm_control() as control:
        # pages_to_scan is read-only under the scan-time advisor: the script's writes would fail.
        if read_advisor_mode() not in (None, "none"):
            control.set_advisor_mode("none")
        yield control


def test_status_says_what_the_real_ksmtuned_decides_on_this_host(
    ksm: KsmControl, tmp_path: Path
) -> None:
    with running_ksmtuned(tmp_path) as tuner:
        assert comm(tuner.loop_pid) == "ksmtuned"  # what status finds it by
        eventually(tuner.log.decisions, 10, what="ksmtuned's first decision")
        choice = status_ksmtuned()
        seen = len(tuner.log.decisions())
        # The decision of the interval after status read the host.
        decisions = eventually(
            lambda: d if len(d := tuner.log.decisions()) > seen else None,
            10,
            what="ksmtuned's next decision",
        )
        log = tuner.log
    decision = decisions[seen]
    assert choice["threshold_bytes"] == log.first("thres") * 1024
    if decision is None:
        assert (choice["run"], choice["pages_to_scan"], choice["sleep_millisecs"]) == (
            0,
            None,
            None,
        )
    else:
        assert (choice["run"], choice["pages_to_scan"], choice["sleep_millisecs"]) == (
            1,
            *decision,
        )
    # What it counted as QEMU's, within what changed in a second (guests of other work may run).
    committed = log.committed_kib()[seen] * 1024
    assert isinstance(choice["committed_bytes"], int)
    assert abs(choice["committed_bytes"] - committed) <= max(0.05 * committed, 64 << 20)


def test_status_follows_the_real_ksmtuned_under_memory_pressure(
    ksm: KsmControl, tmp_path: Path
) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(PRESSED_MEMINFO)
    # No ksmtuned runs yet: status does not model it (only a tuner that runs here is shown).
    assert "ksmtuned" not in status_others(meminfo=meminfo)
    with running_ksmtuned(tmp_path, meminfo, PRESSED_INTERVAL) as tuner:
        loop = tuner.loop_pid
        eventually(tuner.log.decisions, 3 * PRESSED_INTERVAL, what="its first decision")

        Said = tuple[object, object, object]

        def status_then_ksmtuned() -> tuple[Said, tuple[int, int]] | None:
            """What status said from the pages ksmtuned wrote, and what it wrote next; None
            where ksmtuned wrote while status watched (status saw one or the other)."""
            before = read_ksm("pages_to_scan")
            choice = status_ksmtuned(namespace_of=loop)
            if read_ksm("pages_to_scan") != before:
                return None
            pages = [decision[0] for decision in tuner.log.decisions() if decision is not None]
            if before not in pages:
                return None  # the setting from before ksmtuned's first write
            index = pages.index(before)
            following: tuple[int, int] = eventually(
                lambda: d[index + 1] if len(d := tuner.log.decisions()) > index + 1 else None,
                3 * PRESSED_INTERVAL,
                what="ksmtuned's next decision",
            )
            return (choice["run"], choice["pages_to_scan"], choice["sleep_millisecs"]), following

        compared = []
        for _ in range(3):
            said, following = eventually(
                status_then_ksmtuned, 5 * PRESSED_INTERVAL, what="a quiet status run"
            )
            assert said == (1, *following)
            compared.append(following)
        decisions = tuner.log.decisions()
        log = tuner.log
    # Its count starts at 0 and rises 300 an interval, clamped to 1250; the sleep is 10 ms x
    # 16 GiB / 4 GiB; the threshold 20% of the MemTotal it was shown.
    assert log.first("sleep") == 40
    assert log.first("thres") == 4194304 * 20 // 100
    assert decisions[0] == (300, 40)
    assert compared[0][0] < 1250, "no step compared before the clamp"
    assert all(d == (min(1250, 300 * (i + 1)), 40) for i, d in enumerate(decisions))
    print(f"ksmtuned under pressure decided {decisions}; status agreed on {compared}")

"""`ksm-exporter tune` on this host's real KSM, for the rules a year on a host needs: memory
that never merges, then identical guests that must still be merged; and a restart that
takes up from its state file and sees a guest that registered while no tuner ran. Every
setting is restored by ksm_control, even on failure."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.eventually import eventually
from harness.exporter_process import Child
from harness.real_ksm import KsmControl, ksm_control, merging_child, read_ksm
from ksm_exporter.sources.roots import Roots
from tests.test_tune_command import CHANGED, started, stopped_by_sigterm, tune_argv

pytestmark = pytest.mark.realksm

HOST = Roots("/sys", "/proc")
MIB = 1 << 20
PAGE = 4096
MERGE_TIMEOUT = 120.0
# Half a CPU: on a test machine other processes' memory registered with KSM is scanned too,
# and pages of theirs with many sharers cost ksmd tens of microseconds each; at the default
# tenth of a CPU a full scan can take minutes there.
BUDGET = 0.5
# A process holding memory registered with KSM whose every page differs: it never merges.
DISTINCT = r"""
import mmap, os, sys
size = int(sys.argv[1])
area = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
for offset in range(0, size, 1 << 20):
    area[offset:offset + (1 << 20)] = os.urandom(1 << 20)
area.madvise(mmap.MADV_MERGEABLE)
print("ready", flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def distinct_child(size: int) -> Iterator[subprocess.Popen[str]]:
    child = subprocess.Popen(
        [sys.executable, "-c", DISTINCT, str(size)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        yield child
    finally:
        child.kill()
        child.wait()


@contextlib.contextmanager
def tuner(state_dir: Path) -> Iterator[Child]:
    """`ksm-exporter tune` at its defaults on this host, started and always stopped; a
    failure inside says what it logged."""
    child = Child(tune_argv(HOST, f"--tuning.cpu-budget={BUDGET}", state_dir=state_dir))
    try:
        started(child)
        yield child
    except AssertionError as err:
        raise AssertionError(f"{err}\ntuner log:\n{child.output()}") from err
    finally:
        child.stop()


def tunable(control: KsmControl) -> None:
    """The advisor off and the kernel's defaults, KSM running: a host the tuner may tune."""
    control.set_advisor_mode("none")
    control.set(pages_to_scan=100, sleep_millisecs=20, run=1)


def changes(child: Child) -> list[tuple[str, int, int, str]]:
    return [(s, int(a), int(b), r) for s, a, b, r in CHANGED.findall(child.output())]


def stop(child: Child, state: Path) -> dict[str, Any]:
    assert stopped_by_sigterm(child) < 2.0
    assert child.process.returncode == 0, child.output()
    record: dict[str, Any] = json.loads(state.read_text())
    assert record["state"] == "stopped"
    return record


def test_identical_guests_after_memory_that_never_merges_are_merged(tmp_path: Path) -> None:
    with ksm_control() as control, distinct_child(64 * MIB):
        tunable(control)
        with tuner(tmp_path) as child:
            # The tenant's pages are scanned and found distinct; the tuner goes on.
            eventually(lambda: child.running() and changes(child), 30, what="a change")
            before = len(changes(child))
            with merging_child(32 * MIB) as guest:
                eventually(
                    lambda: (
                        child.running()
                        and any("registered with KSM" in c[3] for c in changes(child)[before:])
                    ),
                    15,
                    what="the registration taken for new memory",
                )
                guest.wait_merged(int(0.9 * 32 * MIB / PAGE), MERGE_TIMEOUT)
                assert read_ksm("run") == 1
                record = stop(child, tmp_path / "tune.json")
    assert "run" not in record["written"]  # 64 MiB of rmap items' worth is no 1% of this host
    assert {setting for setting, *_ in changes(child)} == {"pages_to_scan"}


def test_a_restarted_tuner_sees_a_guest_that_registered_while_it_was_stopped(
    tmp_path: Path,
) -> None:
    state = tmp_path / "tune.json"
    with ksm_control() as control, merging_child(16 * MIB) as first_guest:
        tunable(control)
        with tuner(tmp_path) as first:
            eventually(lambda: first.running() and changes(first), 30, what="a change")
            first_guest.wait_merged(1, MERGE_TIMEOUT)
            record = stop(first, state)
        assert first_guest.pid in record["registered"]
        with merging_child(32 * MIB) as second_guest, tuner(tmp_path) as second:
            eventually(
                lambda: second.running() and "1 process(es) registered" in second.output(),
                15,
                what="the guest that registered meanwhile taken for new memory",
            )
            second_guest.wait_merged(int(0.9 * 32 * MIB / PAGE), MERGE_TIMEOUT)
            again = stop(second, state)
    assert again["changes"] > record["changes"]

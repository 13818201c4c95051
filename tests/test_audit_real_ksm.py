"""`ksm-exporter audit` on real KSM: three tenants in cgroups made for the test, with pages
whose sharing is known before ksmd merges them, and the audit without CAP_SYS_ADMIN."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator

import pytest

from harness.cgroups import HIERARCHIES, cgroup_v2, cgroup_v2_unwritable
from harness.eventually import eventually
from harness.paths import REPO
from harness.real_ksm import KsmControl, ksm_control, read_ksm
from harness.sharing_workload import SeededChild, seeded_children
from harness.tools import require

pytestmark = pytest.mark.realksm

TOKEN = secrets.token_hex(6)  # no other process on the host holds pages made from it
BASE = f"ksm-exporter-audit-{os.getpid()}-{TOKEN}"


def seeds(kind: str, count: int) -> list[str]:
    return [f"{TOKEN}-{kind}-{index}" for index in range(count)]


# Pages identical within tenant A only (in both of A's processes), across A and B, across all
# three, and unique to each process.
A_ONLY, A_AND_B, ALL_THREE = seeds("a", 10), seeds("ab", 8), seeds("abc", 6)
LAYOUT = {
    "a1": ("A", A_ONLY + A_AND_B + ALL_THREE + seeds("u-a1", 12)),
    "a2": ("A", A_ONLY + seeds("u-a2", 12)),
    "b": ("B", A_AND_B + ALL_THREE + seeds("u-b", 12)),
    "c": ("C", ALL_THREE + seeds("u-c", 12)),
}
# Each process's ksm_merging_pages once merged: its pages some other page is identical to.
MERGED = {"a1": 24, "a2": 10, "b": 14, "c": 6}
# (KSM pages, of which within the tenant, of which across, what leaving KSM costs) worked out
# from the layout: A maps the A-only frames twice (20 pages), the A-B frames and all-three
# frames once each. Leaving KSM, A gives up one page per A-only frame (2 mappings save 1) and
# one per frame it shares (the others keep theirs): 10 + 8 + 6.
EXPECTED_TENANTS = {"A": (34, 20, 14, 24), "B": (14, 0, 14, 14), "C": (6, 0, 6, 6)}
EXPECTED_PAIRS = {("A", "B"): 14, ("A", "C"): 6, ("B", "C"): 6}


@contextlib.contextmanager
def tenants() -> Iterator[dict[str, SeededChild]]:
    reason = cgroup_v2_unwritable()
    if reason:
        pytest.skip(reason)
    with contextlib.ExitStack() as stack:
        procs = {
            name: str(stack.enter_context(cgroup_v2(f"{BASE}/{name}")) / "cgroup.procs")
            for name in ("A", "B", "C")
        }
        children = stack.enter_context(
            seeded_children([(procs[tenant], pages) for tenant, pages in LAYOUT.values()])
        )
        yield dict(zip(LAYOUT, children, strict=True))


def audit(*prefix: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *prefix,
            sys.executable,
            "-m",
            "ksm_exporter",
            "audit",
            "--json",
            f"--tenant-by=cgroup:^/{BASE}/([^/]+)",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def ksm() -> Iterator[KsmControl]:
    with ksm_control() as control:
        control.set(pages_to_scan=5000, sleep_millisecs=10, run=1)
        yield control


def test_the_audit_finds_exactly_the_sharing_the_pages_were_made_with(ksm: KsmControl) -> None:
    with tenants() as children:
        eventually(
            lambda: all(children[n].merging_pages() == MERGED[n] for n in MERGED),
            timeout=60,
            what=f"ksmd merging {MERGED}",
        )
        before = read_ksm("pages_shared") + read_ksm("pages_sharing")
        run = audit()
        after = read_ksm("pages_shared") + read_ksm("pages_sharing")
        still_merged = {n: children[n].merging_pages() for n in MERGED}
    assert not any((root / BASE).exists() for root in HIERARCHIES), "a test cgroup was left"
    assert run.returncode == 0, run.stderr
    assert still_merged == MERGED
    result = json.loads(run.stdout)
    found = {t["name"]: t for t in result["tenants"]}
    columns = ("ksm_pages", "within_pages", "cross_pages", "ksm_off_cost_pages")
    assert {
        name: tuple(found[name][column] for column in columns) for name in EXPECTED_TENANTS
    } == EXPECTED_TENANTS
    pairs = {tuple(p["tenants"]): p["frames"] for p in result["pairs"]}
    ours = {pair: frames for pair, frames in pairs.items() if set(pair) <= set(EXPECTED_TENANTS)}
    assert ours == EXPECTED_PAIRS
    assert not [pair for pair in pairs if set(pair) & set(EXPECTED_TENANTS) and pair not in ours]
    # The host's totals, all processes included, within what ksmd changed while it read.
    mappings = result["totals"]["mappings"]
    assert min(before, after) <= mappings <= max(before, after), (before, mappings, after)
    assert result["kernel"]["agrees"] is True


def test_without_cap_sys_admin_the_audit_names_the_privilege_and_finds_nothing() -> None:
    setpriv = require("setpriv", "util-linux")
    if os.geteuid() != 0:
        pytest.skip("dropping CAP_SYS_ADMIN from a root audit needs root")
    with seeded_children([(None, seeds("unprivileged", 16))]):
        run = audit(setpriv, "--inh-caps=-sys_admin", "--bounding-set=-sys_admin", "--")
    assert run.returncode == 1
    assert run.stdout == ""
    assert run.stderr.count("\n") == 1
    assert "CAP_SYS_ADMIN" in run.stderr

"""`ksm-exporter audit` on the page-sharing fixture trees: the counts README.md works out by
hand from the frames, per tenant key, and one line, never "no sharing", without privilege."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.paths import FIXTURES
from ksm_exporter.cli import main
from ksm_exporter.derive.sharing import TenantFrames, pair_frames, share
from ksm_exporter.derive.tenants import BadTenantKey, parse_tenant_key, tenant_of

pytestmark = pytest.mark.unit


def audit_json(capsys: pytest.CaptureFixture[str], tree: str, *flags: str) -> dict[str, object]:
    root = FIXTURES / "sharing" / tree
    code = main(
        [
            "audit",
            "--json",
            f"--path.procfs={root / 'proc'}",
            f"--path.sysfs={root / 'sys'}",
            *flags,
        ]
    )
    assert code == 0
    result: dict[str, object] = json.loads(capsys.readouterr().out)
    return result


def tenants_of(result: dict[str, object]) -> dict[str, tuple[int, ...]]:
    rows = result["tenants"]
    assert isinstance(rows, list)
    return {
        row["name"]: (
            row["ksm_pages"],
            row["within_pages"],
            row["cross_pages"],
            row["frames"],
            row["cross_frames"],
            row["ksm_off_cost_pages"],
            row["isolation_cost_pages"],
        )
        for row in rows
    }


def pairs_of(result: dict[str, object]) -> list[tuple[str, str, int]]:
    rows = result["pairs"]
    assert isinstance(rows, list)
    return [(*row["tenants"], row["frames"]) for row in rows]


def test_by_vm_each_tenant_and_pair_as_worked_out_by_hand(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = audit_json(capsys, "privileged", "--tenant-by=vm")
    assert tenants_of(result) == {
        "alpha": (6, 4, 2, 4, 2, 4, 2),
        "beta": (4, 0, 4, 3, 3, 4, 3),
        "gamma": (1, 0, 1, 1, 1, 1, 1),
        "pid 3004 (redis-server)": (3, 2, 1, 2, 1, 2, 1),
    }
    assert pairs_of(result) == [
        ("alpha", "beta", 2),
        ("alpha", "gamma", 1),
        ("beta", "gamma", 1),
        ("beta", "pid 3004 (redis-server)", 1),
    ]
    assert result["totals"] == {
        "frames": 6,
        "mappings": 14,
        "saved_pages": 8,
        "cross_tenant_frames": 3,
        "cross_tenant_saved_pages": 4,
    }
    kernel = result["kernel"]
    assert isinstance(kernel, dict)
    assert kernel["agrees"] is True
    assert kernel["merging_pages_read"] == 14
    assert result["complete"] is True


def test_by_uid_sharing_within_a_user_is_not_across(capsys: pytest.CaptureFixture[str]) -> None:
    result = audit_json(capsys, "privileged", "--tenant-by=uid")
    assert tenants_of(result) == {
        "107": (10, 7, 3, 5, 2, 7, 2),
        "108": (1, 0, 1, 1, 1, 1, 1),
        "999": (3, 2, 1, 2, 1, 2, 1),
    }
    assert pairs_of(result) == [("107", "108", 1), ("107", "999", 1)]


def test_by_unit_and_by_cgroup_depth_guests_are_their_scopes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    by_unit = tenants_of(audit_json(capsys, "privileged", "--tenant-by=unit"))
    assert set(by_unit) == {
        "machine-qemu\\x2d1\\x2dalpha.scope",
        "machine-qemu\\x2d2\\x2dbeta.scope",
        "machine-qemu\\x2d3\\x2dgamma.scope",
        "redis-server.service",
    }
    by_depth = tenants_of(audit_json(capsys, "privileged", "--tenant-by=cgroup:1"))
    assert by_depth == {
        "/machine.slice": (11, 10, 1, 5, 1, 7, 1),  # F1-F4 within, F5 with redis
        "/system.slice": (3, 2, 1, 2, 1, 2, 1),
    }


def test_a_key_that_matches_nothing_makes_each_process_its_own_tenant(
    capsys: pytest.CaptureFixture[str],
) -> None:
    result = audit_json(capsys, "privileged", "--tenant-by=cgroup:^/nowhere/")
    rows = result["tenants"]
    assert isinstance(rows, list)
    assert {row["name"] for row in rows} == {
        f"pid {pid} ({comm})"
        for pid, comm in (
            (3001, "qemu-system-x86"),
            (3002, "qemu-system-x86"),
            (3003, "qemu-system-x86"),
            (3004, "redis-server"),
        )
    }
    assert not any(row["keyed"] for row in rows)


def test_without_cap_sys_admin_one_line_names_it_and_no_finding(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = FIXTURES / "sharing" / "unprivileged"
    code = main(["audit", f"--path.procfs={root / 'proc'}", f"--path.sysfs={root / 'sys'}"])
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert "CAP_SYS_ADMIN" in err


def test_the_text_lists_the_largest_pair_first(capsys: pytest.CaptureFixture[str]) -> None:
    root = FIXTURES / "sharing" / "privileged"
    assert main(["audit", f"--path.procfs={root / 'proc'}", f"--path.sysfs={root / 'sys'}"]) == 0
    out = capsys.readouterr().out
    pair_lines = [line for line in out.splitlines() if "<->" in line]
    assert "alpha" in pair_lines[0]
    assert "beta" in pair_lines[0]
    assert len(pair_lines) == 4


@pytest.mark.parametrize("bad", ["vms", "cgroup:0", "uid:3", "cgroup:(", "cgroup:"])
def test_a_bad_tenant_key_is_refused(bad: str) -> None:
    with pytest.raises(BadTenantKey):
        parse_tenant_key(bad)


def test_a_cgroup_expression_takes_its_first_group() -> None:
    key = parse_tenant_key("cgroup:/(pod[^/]+)/")
    assert tenant_of(key, {"cgroup": "/kubepods/burstable/pod1/abc"}, None) == "pod1"
    assert tenant_of(key, {"cgroup": "/system.slice/a.service"}, None) == ""


frames_of_tenants = st.lists(
    st.dictionaries(st.integers(0, 30), st.integers(1, 4), max_size=12), min_size=1, max_size=5
)


@given(frames_of_tenants)
def test_the_counts_add_up_as_mm_ksm_counts_them(maps: list[dict[int, int]]) -> None:
    tenants = [
        TenantFrames(f"t{i}", (list(Counter(frames).elements()),)) for i, frames in enumerate(maps)
    ]
    sharing = share(tenants)
    mappings: Counter[int] = Counter()
    holders: Counter[int] = Counter()
    for frames in maps:
        mappings.update(frames)
        holders.update(frames.keys())
    assert sharing.frames == len(mappings)  # pages_shared: one per stable node
    assert sharing.saved_pages == sum(k - 1 for k in mappings.values())  # pages_sharing
    assert sharing.cross_tenant_saved_pages == sum(n - 1 for n in holders.values())
    for tenant in sharing.tenants:
        assert tenant.within_pages + tenant.cross_pages == tenant.ksm_pages
    for pair in sharing.pairs:
        first, second = (maps[int(name[1:])] for name in (pair.first, pair.second))
        assert pair.frames == len(first.keys() & second.keys())


@given(st.lists(st.sets(st.integers(0, 40), max_size=15), max_size=8))
def test_pairs_by_intersections_and_by_sets_of_tenants_agree(cross_of: list[set[int]]) -> None:
    assert pair_frames(cross_of, pairwise=True) == pair_frames(cross_of, pairwise=False)

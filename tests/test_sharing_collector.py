"""The opt-in sharing collector: the audit's figures as bounded series, taken on a thread of
its own; without CAP_SYS_ADMIN no tenant series at all, never zeros."""

from __future__ import annotations

import json
import os

import pytest

from harness.eventually import eventually
from harness.exporter_process import running_exporter
from harness.exposition import Samples, names, parse_samples, value
from harness.paths import FIXTURES, fixture_roots
from ksm_exporter.cli import build_parser, load_settings, main
from ksm_exporter.derive.tenants import parse_tenant_key
from ksm_exporter.server.exposition import Exposition
from ksm_exporter.server.sharing_audit import SharingAuditor

VM = {"pid": "", "comm": ""}
REDIS = {"vm": "", "pid": "3004", "comm": "redis-server"}


def scraped(auditor: SharingAuditor) -> Samples:
    return parse_samples(Exposition(auditor.families()).render("", "")[0].decode())


def auditor(tree: str, tenants: int = 100, pairs: int = 20) -> SharingAuditor:
    return SharingAuditor(fixture_roots(tree), parse_tenant_key("vm"), 300, tenants, pairs)


@pytest.mark.unit
def test_each_tenant_and_pair_as_the_fixture_readme_works_them_out() -> None:
    sharing = auditor("sharing/privileged")
    assert sharing.families() == []  # nothing before the first audit has finished
    sharing.audit_once()
    samples = scraped(sharing)
    own = "ksm_sharing_tenant_pages"
    assert value(samples, own, vm="alpha", frames="own", **VM) == 4
    assert value(samples, own, vm="alpha", frames="shared", **VM) == 2
    assert value(samples, own, frames="own", **REDIS) == 2
    assert value(samples, "ksm_sharing_tenant_shared_frames", vm="beta", **VM) == 3
    assert value(samples, "ksm_sharing_tenant_leave_ksm_pages", vm="alpha", **VM) == 4
    pair = {"peer_pid": "", "peer_comm": "", **VM}
    assert value(samples, "ksm_sharing_pair_frames", vm="alpha", peer_vm="beta", **pair) == 2
    assert (
        value(
            samples,
            "ksm_sharing_pair_frames",
            vm="beta",
            peer_vm="",
            peer_pid="3004",
            peer_comm="redis-server",
            **VM,
        )
        == 1
    )
    assert value(samples, "ksm_sharing_cross_tenant_saved_pages") == 4
    assert value(samples, "ksm_sharing_mapped_pages") == 14
    assert value(samples, "ksm_sharing_audit_up") == 1
    assert value(samples, "ksm_sharing_audit_complete") == 1


@pytest.mark.unit
def test_beyond_the_limits_tenants_and_pairs_are_summed() -> None:
    sharing = auditor("sharing/privileged", tenants=1, pairs=1)
    sharing.audit_once()
    samples = scraped(sharing)
    tenants = {labels for name, labels in samples if name == "ksm_sharing_tenant_shared_frames"}
    assert len(tenants) == 1  # beta: most pages shared with others
    assert value(samples, "ksm_sharing_other_tenants_pages", frames="shared") == 2 + 1 + 1
    assert value(samples, "ksm_sharing_other_tenants_pages", frames="own") == 4 + 2
    assert value(samples, "ksm_sharing_pairs") == 4
    assert value(samples, "ksm_sharing_other_pairs_frames") == 3


@pytest.mark.unit
def test_without_cap_sys_admin_no_tenant_series_only_the_audit_down() -> None:
    sharing = auditor("sharing/unprivileged")
    sharing.audit_once()
    samples = scraped(sharing)
    assert value(samples, "ksm_sharing_audit_up") == 0
    assert not {
        n for n in names(samples) if n.startswith(("ksm_sharing_tenant", "ksm_sharing_pair"))
    }


@pytest.mark.unit
def test_the_collector_is_off_unless_asked_for_and_a_bad_key_stops_start_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert load_settings(build_parser().parse_args([])).collector_sharing is False
    with pytest.raises(SystemExit):
        load_settings(build_parser().parse_args(["--collector.sharing.tenant-by=vms"]))
    assert "--collector.sharing.tenant-by" in capsys.readouterr().err


@pytest.mark.e2e
def test_the_serving_exporter_serves_the_sharing_series_off_the_scrape() -> None:
    tree = FIXTURES / "sharing" / "privileged"
    with running_exporter(
        f"--path.sysfs={tree / 'sys'}",
        f"--path.procfs={tree / 'proc'}",
        "--collector.sharing",
        "--collector.sharing.tenant-by=unit",
    ) as exporter:
        samples = eventually(
            lambda: (
                s if "ksm_sharing_audit_up" in names(s := parse_samples(exporter.get())) else None
            ),
            timeout=30,
            what="the first sharing audit",
        )
    unit = {"pid": "", "comm": ""}
    assert (
        value(
            samples, "ksm_sharing_tenant_pages", unit="redis-server.service", frames="own", **unit
        )
        == 2
    )


def status_on(
    capsys: pytest.CaptureFixture[str], tree: str, *flags: str
) -> dict[str, object] | None:
    """The `sharing` key of `status --json` on a page-sharing fixture tree."""
    root = FIXTURES / "sharing" / tree
    paths = [f"--path.procfs={root / 'proc'}", f"--path.sysfs={root / 'sys'}", "--window=0.1"]
    assert main(["status", "--json", *flags, *paths]) == 0
    found: dict[str, object] | None = json.loads(capsys.readouterr().out)["sharing"]
    return found


@pytest.mark.unit
def test_status_shows_the_largest_pairs_and_what_isolating_costs_where_audited(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert status_on(capsys, "privileged") is None
    sharing = status_on(capsys, "privileged", "--sharing")
    assert sharing is not None
    page = os.sysconf("SC_PAGE_SIZE")
    assert sharing["tenant_by"] == "vm"
    assert sharing["pairs"] == [  # the fixture's README, the five largest
        {"tenants": ["alpha", "beta"], "shared_bytes": 2 * page},
        {"tenants": ["alpha", "gamma"], "shared_bytes": page},
        {"tenants": ["beta", "gamma"], "shared_bytes": page},
        {"tenants": ["beta", "pid 3004 (redis-server)"], "shared_bytes": page},
    ]
    tenants = sharing["tenants"]
    assert isinstance(tenants, list)
    assert tenants[0] == {
        "name": "beta",
        "isolation_cost_bytes": 3 * page,
        "leave_ksm_cost_bytes": 4 * page,
    }
    by_uid = status_on(capsys, "privileged", "--sharing=uid")
    assert by_uid is not None
    assert by_uid["pairs"] == [
        {"tenants": ["107", "108"], "shared_bytes": page},
        {"tenants": ["107", "999"], "shared_bytes": page},
    ]


@pytest.mark.unit
def test_status_without_cap_sys_admin_says_so_never_no_sharing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sharing = status_on(capsys, "unprivileged", "--sharing")
    assert sharing is not None
    assert "CAP_SYS_ADMIN" in str(sharing["error"])
    assert "pairs" not in sharing

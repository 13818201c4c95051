"""The host dashboard's VM table through a real Prometheus, over an exporter serving
KubeVirt and libvirt guests: a VMI name is unique only in its namespace, so two VMIs named
db-1 on one node are two rows, each with its own share of RAM merged."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.dashboards import queries
from harness.exporter_process import running_exporter
from harness.prometheus_server import running_prometheus, scrape_config
from tests.support.guest_tree import FixtureGuest, guest_tree, kubevirt_cgroup

pytestmark = pytest.mark.e2e

JOB = "ksm-exporter"
TABLE = "VMs by merged memory and profit"
LIBVIRT_SCOPE = "/machine.slice/machine-qemu\\x2d1\\x2dinstance\\x2d00000001.scope/libvirt/emulator"
GUESTS = [
    FixtureGuest(
        5001,
        ("/usr/libexec/qemu-kvm", "-name", "guest=tenant-a_db-1,debug-threads=on",
         "-m", "size=1048576k"),
        kubevirt_cgroup("aaaa"),
        1000,
    ),
    FixtureGuest(
        5002,
        ("/usr/libexec/qemu-kvm", "-name", "guest=tenant-b_db-1,debug-threads=on", "-m", "2048"),
        kubevirt_cgroup("bbbb"),
        3000,
    ),
    FixtureGuest(
        5003,
        ("/usr/bin/qemu-system-x86_64", "-name", "guest=instance-00000001,debug-threads=on",
         "-uuid", "414426ac-7c2b-4f36-9a5e-3f1d2c0b8e71", "-m", "size=2048M,slots=4,maxmem=8G"),
        LIBVIRT_SCOPE,
        500,
    ),
]  # fmt: skip
# Each guest's row: its merging pages and its -m in bytes, worked out here.
ROWS = {
    frozenset({("namespace", "tenant-a"), ("vm", "db-1")}): (1000, 1048576 << 10),
    frozenset({("namespace", "tenant-b"), ("vm", "db-1")}): (3000, 2048 << 20),
    frozenset({("vm", "instance-00000001")}): (500, 2048 << 20),
}


def test_two_vmis_of_one_name_are_two_rows_with_their_own_share(tmp_path: Path) -> None:
    tree = guest_tree(tmp_path / "tree", GUESTS)
    by_ref = {q.ref_id: q for q in queries("ksm-host.json") if q.panel == TABLE}
    with running_exporter(f"--path.sysfs={tree / 'sys'}", f"--path.procfs={tree / 'proc'}") as e:
        fills = {"cluster": ".*", "job": JOB, "instance": e.address, "__rate_interval": "4s"}
        with running_prometheus(scrape_configs=[scrape_config(JOB, e.address)]) as prometheus:
            prometheus.wait_for_scrapes(1)
            page = prometheus.value(f'ksm_page_size_bytes{{instance="{e.address}"}}')
            merged = prometheus.values(by_ref["A"].filled(fills))
            share = prometheus.values(by_ref["C"].filled(fills))
    for row, (pages, memory) in ROWS.items():
        assert merged.get(row) == pages * page, row
        assert share.get(row) == pages * page / memory, row
    assert not any(("vm", "db-1") in row and len(row) == 1 for row in merged)

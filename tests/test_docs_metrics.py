"""docs/metrics.md lists exactly the metrics the exporter serves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.exposition import render
from harness.paths import fixture_roots
from ksm_exporter.derive.tenants import parse_tenant_key
from ksm_exporter.server.exposition import Exposition
from ksm_exporter.server.sharing_audit import SharingAuditor
from ksm_exporter.server.web_config_reload import FollowedWebConfig
from ksm_exporter.sources.ksm_files import KSM_FILES
from lab.compare import NUMERIC_FILES
from tests.support.ksmd_simulator import tuned_collection, tuner_collection
from tests.support.metrics_doc import documented_rows, documented_types
from tests.support.sampling import sampled_collection

pytestmark = pytest.mark.unit

DIVIDED_BY = re.compile(r" / (\d+)\b")
FAMILY = re.compile(r"^# TYPE (\S+) (\S+)$", re.MULTILINE)


def exported(directory: Path) -> dict[str, str]:
    """A full kernel's metrics, after the sampler has seen scans complete, and the tuning
    advice after it has seen enough of them; the tuner's, from the state file a tuner wrote;
    the server's own, with a web configuration; and the sharing collector's on the
    page-sharing fixture."""
    text = render(sampled_collection(directory / "sampled"))
    text += render(tuned_collection(directory / "tuned"))
    text += render(tuner_collection(directory / "tuner"))
    (directory / "web.yml").write_text("")
    web_config = FollowedWebConfig(str(directory / "web.yml"))
    text += Exposition(list(web_config.families())).render("", "")[0].decode()
    sharing = SharingAuditor(fixture_roots("sharing/privileged"), parse_tenant_key("vm"), 60, 1, 1)
    sharing.audit_once()
    text += Exposition(sharing.families()).render("", "")[0].decode()
    return dict(FAMILY.findall(text))


def test_every_exported_metric_is_documented_with_its_type(tmp_path: Path) -> None:
    docs = documented_types()
    missing = {name: kind for name, kind in exported(tmp_path).items() if docs.get(name) != kind}
    assert missing == {}


def test_every_documented_metric_is_exported_from_a_full_kernel(tmp_path: Path) -> None:
    assert set(documented_types()) - set(exported(tmp_path)) == set()


def test_each_ksm_file_is_documented_with_the_unit_the_kernel_writes_it_in() -> None:
    """docs/metrics.md itself names each file, and divides by what the lab's comparison
    divides by (ksm.rst's units: milliseconds, percent), for every file the exporter serves."""
    rows = documented_rows()
    served = {spec.name for spec in KSM_FILES}
    assert served <= set(NUMERIC_FILES)
    for name in sorted(served):
        metric, divisor = NUMERIC_FILES[name]
        source = rows[metric][2]
        assert source.startswith(f"`<ksm>/{name}`"), metric
        stated = DIVIDED_BY.search(source)
        assert (int(stated[1]) if stated else 1) == divisor, metric

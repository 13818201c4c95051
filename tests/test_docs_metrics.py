"""docs/metrics.md lists exactly the metrics the exporter serves."""

from __future__ import annotations

import re

from ksm_exporter.collector.collection import KsmCollection
from tests.support.exposition import render
from tests.support.paths import REPO, fixture_roots

ROW = re.compile(r"^\| `(ksm_[a-z0-9_]+)` \| (gauge|counter|info) \|", re.MULTILINE)
FAMILY = re.compile(r"^# TYPE (\S+) (\S+)$", re.MULTILINE)


def documented() -> dict[str, str]:
    return dict(ROW.findall((REPO / "docs" / "metrics.md").read_text()))


def exported() -> dict[str, str]:
    text = render(KsmCollection(fixture_roots("current")))
    return dict(FAMILY.findall(text))


def test_every_exported_metric_is_documented_with_its_type() -> None:
    docs = documented()
    missing = {name: kind for name, kind in exported().items() if docs.get(name) != kind}
    assert missing == {}


def test_every_documented_metric_is_exported_from_a_full_kernel() -> None:
    assert set(documented()) - set(exported()) == set()

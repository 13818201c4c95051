"""docs/metrics.md lists exactly the metrics the exporter serves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.exposition import render
from tests.support.ksmd_simulator import tuned_collection
from tests.support.metrics_doc import documented_types
from tests.support.sampling import sampled_collection

pytestmark = pytest.mark.unit

FAMILY = re.compile(r"^# TYPE (\S+) (\S+)$", re.MULTILINE)


def exported(directory: Path) -> dict[str, str]:
    """A full kernel's metrics, after the sampler has seen scans complete, and the tuning
    advice after it has seen enough of them."""
    text = render(sampled_collection(directory / "sampled"))
    text += render(tuned_collection(directory / "tuned"))
    return dict(FAMILY.findall(text))


def test_every_exported_metric_is_documented_with_its_type(tmp_path: Path) -> None:
    docs = documented_types()
    missing = {name: kind for name, kind in exported(tmp_path).items() if docs.get(name) != kind}
    assert missing == {}


def test_every_documented_metric_is_exported_from_a_full_kernel(tmp_path: Path) -> None:
    assert set(documented_types()) - set(exported(tmp_path)) == set()

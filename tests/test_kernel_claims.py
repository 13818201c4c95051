"""What the dashboards, alerts and guides say of kernel versions names only lab kernels."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.paths import REPO
from lab.versions import lab_sources

pytestmark = pytest.mark.unit

# "kernel 6.8", "Linux 6.4", "6.6+", "6.6 and later": each a claim about when a file arrived.
CLAIM = re.compile(
    r"(?:\b(?:[Kk]ernels?|Linux) (\d+\.\d+)(?![\d.]))|(?:\b(\d+\.\d+)(?:\+| and later| and newer))"
)
CHECKED = (
    *sorted((REPO / "dashboards").glob("*.py")),
    *sorted((REPO / "mixin").glob("*.libsonnet")),
    REPO / "docs" / "runbook.md",
    REPO / "docs" / "tuning.md",
    REPO / "docs" / "security.md",
)


@pytest.mark.parametrize("path", CHECKED, ids=lambda path: str(path.relative_to(REPO)))
def test_version_claims_name_kernels_the_lab_booted(path: Path) -> None:
    lab = set(lab_sources())
    claims = {a or b for a, b in CLAIM.findall(path.read_text())}
    assert claims <= lab, f"not proven by a lab kernel ({sorted(lab)}): {sorted(claims - lab)}"


def test_a_claim_of_an_unbooted_kernel_is_caught() -> None:
    assert {a or b for a, b in CLAIM.findall("smart_scan (kernel 6.7+), Linux 6.4 and later")} == {
        "6.7",
        "6.4",
    }

"""Where the repository and the tests' fixtures are."""

from __future__ import annotations

from pathlib import Path

from ksm_exporter.sources.roots import Roots

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
FIXTURES = TESTS / "fixtures"
GOLDEN = TESTS / "golden"


def fixture_roots(name: str) -> Roots:
    return Roots(sysfs=str(FIXTURES / name / "sys"), procfs=str(FIXTURES / name / "proc"))

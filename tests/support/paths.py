from __future__ import annotations

from pathlib import Path

from ksm_exporter.sources.roots import Roots

TESTS = Path(__file__).resolve().parent.parent
FIXTURES = TESTS / "fixtures"
GOLDEN = TESTS / "golden"
REPO = TESTS.parent


def fixture_roots(name: str) -> Roots:
    return Roots(sysfs=str(FIXTURES / name / "sys"), procfs=str(FIXTURES / name / "proc"))

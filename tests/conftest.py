"""Test tiers: every test carries exactly one tier marker, and a unit test starts no process."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator

import pytest
from hypothesis import settings

from harness.tools import skip_summary
from tests.support.unprivileged import NobodyRuntime, nobody_runtime

TIERS = ("unit", "e2e", "realksm", "lab")

# Property tests try few examples by default, so that the unit tier takes seconds, and 25
# times as many with HYPOTHESIS_PROFILE=thorough (CI's full run). No deadline: on a loaded
# machine a slow example is not a failure.
settings.register_profile("quick", max_examples=20, deadline=None)
settings.register_profile("thorough", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "quick"))


def tiers_of(item: pytest.Item) -> list[str]:
    return [mark.name for mark in item.iter_markers() if mark.name in TIERS]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    wrong = [
        f"{item.nodeid}: {tiers_of(item) or 'none'}" for item in items if len(tiers_of(item)) != 1
    ]
    if wrong:
        raise pytest.UsageError(
            f"each test needs exactly one tier marker of {', '.join(TIERS)}:\n" + "\n".join(wrong)
        )


@pytest.fixture(autouse=True)
def _unit_tests_start_no_process(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A unit test that starts a process belongs to the e2e tier: say so at once."""
    if request.node.get_closest_marker("unit") is not None:

        def refuse(self: subprocess.Popen[bytes], args: object, *rest: object) -> None:
            raise AssertionError(f"a unit test started a process: {args!r}; mark it e2e")

        monkeypatch.setattr(subprocess.Popen, "_execute_child", refuse)


@pytest.fixture(scope="session")
def nobody() -> Iterator[NobodyRuntime]:
    """The exporter's runtime copied where `nobody` can run it, once a run."""
    yield from nobody_runtime()


# Where a run records how many tests of each tier ran (passed or failed, not skipped), so
# that CI can tell a tier that ran nothing from one that passed: KSM_EXPORTER_TIER_COUNTS.
TIER_COUNTS = "KSM_EXPORTER_TIER_COUNTS"
_ran: dict[str, int] = dict.fromkeys(TIERS, 0)
_collected: dict[str, int] = dict.fromkeys(TIERS, 0)


def pytest_collection_finish(session: pytest.Session) -> None:
    for item in session.items:
        for tier in tiers_of(item):
            _collected[tier] += 1


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" and not report.skipped:
        for tier in TIERS:
            if tier in report.keywords:
                _ran[tier] += 1
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped[report.nodeid] = skip_reason(report)


# Why each skipped test skipped, for the one line at the end that counts the skips by the
# program that was missing (harness/tools.py words those reasons and counts them).
_skipped: dict[str, str] = {}


def skip_reason(report: pytest.TestReport) -> str:
    """A skip's message; pytest keeps it as (file, line, "Skipped: message")."""
    if isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return str(report.longrepr)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.write_line(skip_summary(list(_skipped.values())))


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get(TIER_COUNTS)
    if path:
        counts = {tier: {"collected": _collected[tier], "ran": _ran[tier]} for tier in TIERS}
        with open(path, "w") as f:
            json.dump(counts, f)

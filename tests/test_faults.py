"""Faults in sysfs and procfs between scrapes: the real exporter stays up, says what is wrong,
and recovers by itself when the fault goes away."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.exporter_process import RunningExporter, running_exporter
from harness.exposition import Samples, parse_samples, value
from harness.paths import FIXTURES
from tests.support.unprivileged import NobodyRuntime, directory_for_nobody, readable_by_all

pytestmark = pytest.mark.e2e


@pytest.fixture
def tree() -> Iterator[Path]:
    """A copy of the `current` fixture that `nobody` can read, in a directory it can reach."""
    with directory_for_nobody("ksm-exporter-faults-") as root:
        shutil.copytree(FIXTURES / "current" / "sys", root / "sys")
        shutil.copytree(FIXTURES / "current" / "proc", root / "proc")
        readable_by_all(root)
        yield root


def paths(tree: Path) -> tuple[str, str]:
    return f"--path.sysfs={tree / 'sys'}", f"--path.procfs={tree / 'proc'}"


def ksm(tree: Path) -> Path:
    return tree / "sys" / "kernel" / "mm" / "ksm"


def scrape(exporter: RunningExporter) -> Samples:
    return parse_samples(exporter.get(timeout=10))


def errors(samples: Samples, source: str) -> float:
    return value(samples, "ksm_exporter_collect_errors_total", source=source)


def assert_healthy(samples: Samples) -> None:
    assert value(samples, "ksm_available") == 1
    assert value(samples, "ksm_pages_sharing") == 30000
    assert value(samples, "ksm_memory_saved_ratio") > 0


def test_sysfs_directory_removed_and_put_back(tree: Path) -> None:
    with running_exporter(*paths(tree)) as exporter:
        assert_healthy(scrape(exporter))
        os.rename(ksm(tree), tree / "ksm-away")
        gone = scrape(exporter)
        assert value(gone, "ksm_available") == 0
        assert ("ksm_pages_sharing", ()) not in gone
        assert errors(gone, "sysfs") == 0  # a kernel without KSM is not an error
        os.rename(tree / "ksm-away", ksm(tree))
        assert_healthy(scrape(exporter))
        assert exporter.process.poll() is None


def test_sysfs_files_turned_into_a_directory_and_a_loop(tree: Path) -> None:
    with running_exporter(*paths(tree)) as exporter:
        assert_healthy(scrape(exporter))
        sharing = ksm(tree) / "pages_sharing"
        sharing.unlink()
        sharing.mkdir()
        (ksm(tree) / "run").unlink()
        (ksm(tree) / "run").symlink_to(ksm(tree) / "run")
        broken = scrape(exporter)
        assert errors(broken, "sysfs") == 2
        assert ("ksm_pages_sharing", ()) not in broken
        assert ("ksm_run", ()) not in broken
        assert value(broken, "ksm_pages_shared") == 1200
        sharing.rmdir()
        sharing.write_text("30000\n")
        (ksm(tree) / "run").unlink()
        (ksm(tree) / "run").write_text("1\n")
        repaired = scrape(exporter)
        assert_healthy(repaired)
        assert value(repaired, "ksm_run") == 1
        assert errors(repaired, "sysfs") == 2  # counted once, while it lasted


def test_sysfs_made_unreadable_as_nobody(tree: Path, nobody: NobodyRuntime) -> None:
    with running_exporter(
        *paths(tree), command=nobody.command(), env=nobody.env, cwd="/"
    ) as exporter:
        assert_healthy(scrape(exporter))
        ksm(tree).chmod(0)
        try:
            first = scrape(exporter)
            second = scrape(exporter)
        finally:
            ksm(tree).chmod(0o755)
        for count, samples in enumerate((first, second), start=1):
            assert value(samples, "ksm_available") == 0
            assert errors(samples, "sysfs") == count
        recovered = scrape(exporter)
        assert_healthy(recovered)
        assert errors(recovered, "sysfs") == 2
    log = exporter.stop()
    assert log.count("not readable") == 1  # said once, not on every scrape
    assert "readable again" in log


def test_procfs_without_permission_as_nobody(tree: Path, nobody: NobodyRuntime) -> None:
    with running_exporter(
        *paths(tree), command=nobody.command(), env=nobody.env, cwd="/"
    ) as exporter:
        healthy = scrape(exporter)
        assert_healthy(healthy)
        processes = value(healthy, "ksm_processes_registered")
        assert processes > 0
        (tree / "proc").chmod(0)
        try:
            denied = scrape(exporter)
        finally:
            (tree / "proc").chmod(0o755)
        assert value(denied, "ksm_pages_sharing") == 30000  # sysfs is unaffected
        assert ("ksm_memory_saved_ratio", ()) not in denied  # needs MemTotal
        assert errors(denied, "meminfo") == 1
        assert errors(denied, "process") >= 1
        recovered = scrape(exporter)
        assert_healthy(recovered)
        assert value(recovered, "ksm_processes_registered") == processes
        assert errors(recovered, "meminfo") == 1

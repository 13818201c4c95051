"""Serving one more KSM file is one line in ksm_exporter/sources/ksm_files.py."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import docs.generate
from harness.exposition import parse_samples, render, value
from harness.paths import FIXTURES
from ksm_exporter.collector.collection import KsmCollection
from ksm_exporter.reading.host_reader import HostReader
from ksm_exporter.sources import ksm_files
from ksm_exporter.sources.ksm_files import KSM_FILES, KsmFile, index_of
from ksm_exporter.sources.roots import Roots
from ksm_exporter.sources.sysfs import HeldKsmSysfs, KsmNumber, KsmSysfs
from tests.support.metrics_doc import METRICS_DOC, documented_rows

pytestmark = pytest.mark.unit

NEW_FILE = KsmFile("pages_migrated", "ksm_pages_migrated_total", "Pages moved.", kind="counter")


DECLARED = index_of((*KSM_FILES, NEW_FILE))


@pytest.fixture
def one_more_file(tmp_path: Path) -> Roots:
    shutil.copytree(FIXTURES / "current", tmp_path / "current")
    ksm = tmp_path / "current" / "sys" / "kernel" / "mm" / "ksm"
    (ksm / "pages_migrated").write_text("4242\n")
    return Roots(str(tmp_path / "current" / "sys"), str(tmp_path / "current" / "proc"))


def test_a_declared_file_is_served_with_its_help_and_type(one_more_file: Roots) -> None:
    text = render(KsmCollection(HostReader(one_more_file, 4096, ksm_files=DECLARED)))
    assert "# HELP ksm_pages_migrated_total Pages moved.\n" in text
    assert "# TYPE ksm_pages_migrated_total counter\n" in text
    assert value(parse_samples(text), "ksm_pages_migrated_total") == 4242


def test_a_declared_file_is_held_open_like_the_others(one_more_file: Roots) -> None:
    held = HeldKsmSysfs(one_more_file.sysfs, DECLARED)
    try:
        held.read()
        assert held.read().snapshot.values["pages_migrated"] == 4242
        directory = os.path.realpath(held.directory)
        fds = os.listdir("/proc/self/fd")
        opened = [fd for fd in fds if _target(fd).startswith(directory + os.sep)]
        assert len(opened) == len(DECLARED.names) == len(KSM_FILES) + 2  # and advisor_mode
    finally:
        held.close()


def test_a_declared_file_that_does_not_parse_is_counted(one_more_file: Roots) -> None:
    ksm = Path(one_more_file.sysfs, "kernel", "mm", "ksm")
    (ksm / "pages_migrated").write_text("many\n")
    samples = parse_samples(
        render(KsmCollection(HostReader(one_more_file, 4096, ksm_files=DECLARED)))
    )
    assert ("ksm_pages_migrated_total", ()) not in samples
    assert value(samples, "ksm_exporter_collect_errors_total", source="sysfs") == 1


def test_a_declared_file_is_documented_by_make_docs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(ksm_files, "KSM_FILES", (*KSM_FILES, NEW_FILE))
    document = tmp_path / "metrics.md"
    shutil.copyfile(METRICS_DOC, document)
    assert docs.generate.write(document)  # what `make docs` does to docs/metrics.md
    row = documented_rows(document)["ksm_pages_migrated_total"]
    assert row[0] == "counter"
    assert "`<ksm>/pages_migrated`" in row[2]
    assert row[3] == "not in the kernel table"  # until kernel_history.py dates it
    assert documented_rows(document).keys() == {*documented_rows(), "ksm_pages_migrated_total"}


def _target(fd: str) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return ""


def test_typed_access_names_exactly_the_declared_files() -> None:
    """`ksm.<file>` is typed for every declared number file and for nothing else, so a
    misspelt file name is an attribute mypy rejects."""
    typed = {name for name, attr in vars(KsmSysfs).items() if isinstance(attr, KsmNumber)}
    assert typed == {spec.name for spec in KSM_FILES}
    ksm = KsmSysfs(True, pages_sharing=7)
    assert (ksm.pages_sharing, ksm.pages_shared) == (7, None)

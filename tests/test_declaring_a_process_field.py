"""Serving one more `ksm_stat` line is one declaration in ksm_exporter/sources/ksm_stat.py
(served per process, summed into the "other" series, documented); one more label is one
declaration in ksm_exporter/sources/process_identity.py."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest

from docs.generate import with_declared_rows
from harness.exposition import Samples, parse_samples, render, value
from harness.paths import FIXTURES
from ksm_exporter.collector.collection import KsmCollection
from ksm_exporter.reading.host_reader import HostReader
from ksm_exporter.reading.processes import ProcessOptions
from ksm_exporter.sources import ksm_stat
from ksm_exporter.sources.ksm_stat import PROCESS_FIELDS, ProcessField
from ksm_exporter.sources.process_identity import LABELS, ProcessLabel
from ksm_exporter.sources.roots import Roots
from tests.support.metrics_doc import METRICS_DOC

pytestmark = pytest.mark.unit

NEW_FIELD = ProcessField(
    "swapped_pages",
    "ksm_swapped_pages",
    "ksm_process_swapped_pages",
    "Merged pages of the process swapped out.",
    "Swapped merged pages of the registered processes without series of their own.",
)
FIELDS = (*PROCESS_FIELDS, NEW_FIELD)
# pid -> the new line's value, in the `current` fixture's registered processes
SWAPPED = {1201: 11, 1302: 22, 1403: 33, 2001: 44, 2002: 55, 2200: 66, 2300: 77, 2400: 88}


@pytest.fixture
def one_more_line(tmp_path: Path) -> Roots:
    shutil.copytree(FIXTURES / "current", tmp_path / "current")
    proc = tmp_path / "current" / "proc"
    for pid, swapped in SWAPPED.items():
        with (proc / str(pid) / "ksm_stat").open("a") as stat:
            stat.write(f"ksm_swapped_pages {swapped}\n")
    return Roots(str(tmp_path / "current" / "sys"), str(proc))


def test_a_declared_line_is_served_per_process(one_more_line: Roots) -> None:
    text = render(KsmCollection(HostReader(one_more_line, 4096, process_fields=FIELDS)))
    assert "# HELP ksm_process_swapped_pages Merged pages of the process swapped out.\n" in text
    assert by_pid(parse_samples(text), "ksm_process_swapped_pages") == SWAPPED


def test_a_declared_line_is_summed_over_the_other_processes(one_more_line: Roots) -> None:
    options = ProcessOptions(limit=2)  # 1201 and 1302 merge the most pages
    collection = KsmCollection(HostReader(one_more_line, 4096, options, process_fields=FIELDS))
    samples = parse_samples(render(collection))
    shown = {
        pid
        for (name, labels) in samples
        if name == "ksm_process_swapped_pages"
        for key, pid in labels
        if key == "pid"
    }
    assert shown == {"1201", "1302"}
    others = sum(v for pid, v in SWAPPED.items() if pid not in (1201, 1302))
    assert value(samples, "ksm_process_other_swapped_pages") == others


def by_pid(samples: Samples, name: str) -> dict[int, float]:
    return {
        int(dict(labels)["pid"]): found
        for (metric, labels), found in samples.items()
        if metric == name
    }


def test_an_undeclared_line_is_not_served(one_more_line: Roots) -> None:
    text = render(KsmCollection(HostReader(one_more_line, 4096)))
    assert "ksm_process_swapped_pages" not in text


def test_a_declared_line_is_documented(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ksm_stat, "PROCESS_FIELDS", FIELDS)
    monkeypatch.setattr("docs.generate.PROCESS_FIELDS", FIELDS)
    lines = with_declared_rows(METRICS_DOC.read_text()).splitlines()
    assert "| `ksm_process_swapped_pages` | gauge | pages | `ksm_swapped_pages` | - |" in lines
    assert (
        "| `ksm_process_other_swapped_pages` | gauge | pages | sum of `ksm_swapped_pages` "
        "of those processes | - |"
    ) in lines


def qemu_smbios(cmdline: bytes) -> str:
    argv = cmdline.split(b"\0")
    return next((b.decode() for a, b in itertools.pairwise(argv) if a == b"-smbios"), "")


def test_a_declared_label_is_served(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "current", tmp_path / "current")
    proc = tmp_path / "current" / "proc"
    smbios = "type=1,uuid=6f0e2c8a-1b2d-4c3e-9f00-aabbccddeeff"
    cmdline = proc / "1201" / "cmdline"
    cmdline.write_bytes(cmdline.read_bytes() + f"-smbios\0{smbios}\0".encode())
    roots = Roots(str(tmp_path / "current" / "sys"), str(proc))
    labels = (*LABELS, ProcessLabel("vm_smbios", ("cmdline",), qemu_smbios))
    options = ProcessOptions(labels=("vm", "vm_smbios"))
    samples = parse_samples(
        render(KsmCollection(HostReader(roots, 4096, options, process_labels=labels)))
    )
    assert value(
        samples, "ksm_process_merging_pages", pid="1201", vm="web01", vm_smbios=smbios
    ) == (120000)
    assert value(samples, "ksm_process_merging_pages", pid="1302", vm="db02") == 50000

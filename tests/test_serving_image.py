"""The serving exporter runs from validated settings in a fresh process image, without pydantic."""

from __future__ import annotations

import json

import pytest

from ksm_exporter.cli import build_parser, load_settings
from ksm_exporter.validated import ValidatedSettings
from tests.support.exporter_process import running_exporter
from tests.support.paths import FIXTURES

FLAGS = [
    "--collector.process.labels=comm,cgroup",
    "--collector.process.always-include=^qemu",
    "--tuning.cpu-budget=0.05",
    "--web.idle-timeout=7",
]


@pytest.mark.unit
def test_the_handed_over_values_read_like_the_settings() -> None:
    settings = load_settings(build_parser().parse_args(FLAGS))
    handed_over = ValidatedSettings(json.loads(json.dumps(settings.model_dump())))
    for name in type(settings).model_fields:
        assert getattr(handed_over, name) == getattr(settings, name), name
    assert handed_over.process_labels == settings.process_labels == ("comm", "cgroup")
    assert handed_over.process_always_include == settings.process_always_include
    assert handed_over.tuning == settings.tuning
    with pytest.raises(AttributeError):
        _ = handed_over.no_such_setting


@pytest.mark.e2e
def test_the_serving_exporter_has_not_loaded_pydantic() -> None:
    sysfs, procfs = FIXTURES / "current" / "sys", FIXTURES / "current" / "proc"
    with running_exporter(f"--path.sysfs={sysfs}", f"--path.procfs={procfs}") as exporter:
        assert "ksm_pages_sharing 30000.0" in exporter.get()
        with open(f"/proc/{exporter.process.pid}/maps") as maps:
            libraries = {line.split()[-1] for line in maps if "/" in line}
        with open(f"/proc/{exporter.process.pid}/comm") as comm:
            assert comm.read() == "ksm-exporter\n"  # what ps, top and pgrep -x show
    assert [path for path in libraries if "pydantic" in path] == []
    assert [path for path in libraries if "uvloop" in path] != []  # the faster loop stays

"""The exporter serves what `ksm-exporter tune` wrote in its state file, as ksm_tuner_*:
expected values are the file's own, read here as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.exposition import names, parse_samples, render, value
from ksm_exporter.collector.collection import KsmCollection
from ksm_exporter.reading.host_reader import HostReader
from tests.support.ksmd_simulator import tuner_collection
from tests.support.sampling import copy_fixture

pytestmark = pytest.mark.unit


def test_the_state_file_a_tuner_wrote_is_served(tmp_path: Path) -> None:
    samples = parse_samples(render(tuner_collection(tmp_path)))
    record = json.loads((tmp_path / "tune.json").read_text())
    assert record["changes"] > 0
    assert value(samples, "ksm_tuner_state", state="stopped") == 1
    for other in ("tuning", "overridden", "failed"):
        assert value(samples, "ksm_tuner_state", state=other) == 0
    assert value(samples, "ksm_tuner_changes_total") == record["changes"]
    assert value(samples, "ksm_tuner_state_updated_timestamp_seconds") == record["updated_at"]
    decided = value(samples, "ksm_tuner_last_decision_timestamp_seconds")
    assert decided == record["last_decision_at"]
    change = record["last_change"]
    at = value(
        samples,
        "ksm_tuner_last_change_timestamp_seconds",
        setting=change["setting"],
        rule=change["rule"],
    )
    assert at == change["at"]


@pytest.mark.parametrize("content", [None, "", "{not json", '{"pid": "x"}', "[]"])
def test_no_file_or_a_broken_one_serves_no_tuner_series(
    tmp_path: Path, content: str | None
) -> None:
    roots = copy_fixture("current", tmp_path)
    state = tmp_path / "tune.json"
    if content is not None:
        state.write_text(content)
    collection = KsmCollection(HostReader(roots, tuner_state_file=str(state)))
    try:
        served = names(parse_samples(render(collection)))
    finally:
        collection.close()
    assert not {name for name in served if name.startswith("ksm_tuner_")}

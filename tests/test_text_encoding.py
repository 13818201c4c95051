"""The fast encoder writes exactly the library's bytes, or steps aside."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)

from harness.exposition import families_of
from harness.paths import fixture_roots
from ksm_exporter.collector.collection import KsmCollection
from ksm_exporter.reading.host_reader import HostReader
from ksm_exporter.server import text_encoding
from ksm_exporter.server.exposition import negotiate

pytestmark = pytest.mark.unit

# Accept headers Prometheus versions and other scrapers send, and a few odd ones.
ACCEPTS = [
    "",
    "*/*",
    "text/plain",
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
    "text/plain;version=1.0.0;escaping=allow-utf-8",
    "text/plain;version=1.0.0;escaping=underscores",
    "application/openmetrics-text",
    "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4",
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6",
    "application/openmetrics-text;version=1.0.0;escaping=dots",
    "application/openmetrics-text;version=1.0.0;escaping=values",
    "application/openmetrics-text;version=2.0.0",
]


class Families:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def both(families: list[Metric], accept: str) -> tuple[bytes | None, bytes]:
    encoder, _content_type, fmt = negotiate(accept)
    fast = text_encoding.encode(families, fmt) if fmt else None
    return fast, encoder(Families(families))


names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,20}", fullmatch=True).filter(
    lambda n: not n.endswith("_total") and not n.startswith("__")
)
values = st.one_of(st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True))


@st.composite
def families(draw: st.DrawFn) -> list[Metric]:
    out: list[Metric] = []
    for name in draw(st.lists(names, max_size=5, unique=True)):
        kind = draw(st.sampled_from([GaugeMetricFamily, CounterMetricFamily]))
        documentation = draw(st.text(max_size=40))
        labels = draw(st.lists(names, max_size=3, unique=True))
        family = kind(name, documentation, labels=labels)
        for _ in range(draw(st.integers(0, 3))):
            label_values = [draw(st.text(max_size=15)) for _ in labels]
            family.add_metric(label_values, draw(values))
        out.append(family)
    return out


@given(families(), st.sampled_from(ACCEPTS))
def test_same_bytes_as_the_library(metrics: list[Metric], accept: str) -> None:
    fast, library = both(metrics, accept)
    verbatim = "dots" not in accept and "values" not in accept
    assert fast == (library if verbatim else None)


@pytest.mark.parametrize("accept", ACCEPTS)
def test_the_exporters_own_families_take_the_fast_path(accept: str) -> None:
    collection = KsmCollection(HostReader(fixture_roots("current"), 4096))
    fast, library = both(families_of(collection), accept)
    verbatim = "dots" not in accept and "values" not in accept
    assert fast == (library if verbatim else None)


def test_other_shapes_go_to_the_library() -> None:
    summary = SummaryMetricFamily("s", "a summary", count_value=1, sum_value=2.0)
    counter_with_created = CounterMetricFamily("c", "created", value=1, created=1700000000.0)
    with_unit = GaugeMetricFamily("g_bytes", "unit", value=1, unit="bytes")
    colon = GaugeMetricFamily("a:b", "colon", value=1)
    reserved = GaugeMetricFamily("g", "reserved label", labels=["__x"])
    reserved.add_metric(["v"], 1)
    for family in (summary, counter_with_created, with_unit, colon, reserved):
        assert text_encoding.encode([family], "text") is None
        assert text_encoding.encode([family], "openmetrics") is None

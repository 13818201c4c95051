"""Turning a collection into exposition text and back into numbers, for assertions.

The text comes through the path that serves: the server's `collect_async` and its encoder.
"""

from __future__ import annotations

import asyncio

from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from ksm_exporter.collector.collection import KsmCollection
from ksm_exporter.server.exposition import Exposition

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse_samples(text: str) -> Samples:
    """{(sample name, sorted labels): value} for every sample in the text."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


def families_of(collection: KsmCollection) -> list[Metric]:
    """One scrape's families, collected as the server collects them."""
    return asyncio.run(collection.collect_async())


def encoded(families: list[Metric]) -> str:
    """Prometheus text as the server sends it to a scraper without an Accept header."""
    body, _content_type, _gzipped = Exposition(families).render("", "")
    return body.decode()


def render(collection: KsmCollection) -> str:
    return encoded(families_of(collection))


async def render_async(collection: KsmCollection) -> str:
    """`render` for a test that runs in an event loop already."""
    return encoded(await collection.collect_async())


def without_self_metrics(text: str) -> str:
    """The exposition less the exporter's own timings and build labels, which vary by run."""
    return "".join(line + "\n" for line in text.splitlines() if "ksm_exporter_" not in line)

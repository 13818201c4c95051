"""Turning a collection into exposition text and back into numbers, for assertions."""

from __future__ import annotations

from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from ksm_exporter.collector.collection import KsmCollection

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


def render(collection: KsmCollection) -> str:
    return generate_latest(collection).decode()


def without_self_metrics(text: str) -> str:
    """The exposition less the exporter's own timings and build labels, which vary by run."""
    return "".join(line + "\n" for line in text.splitlines() if "ksm_exporter_" not in line)

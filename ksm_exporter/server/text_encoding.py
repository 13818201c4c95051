"""Gauge and counter families in the Prometheus text format and OpenMetrics, fast.

The bytes are exactly what prometheus-client's encoders write (a property test holds them
side by side); only the work differs: the HELP and TYPE lines of a family are built once
per process rather than once per scrape, and names are checked once rather than escaped per
sample. Anything outside that plain shape (other metric types, units, timestamps,
exemplars, names that need escaping) returns None and the caller uses the library encoder.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from typing import Literal

from prometheus_client import exposition
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as om_exposition
from prometheus_client.utils import floatToGoString

go_float: Callable[[float], str] = floatToGoString  # the library's float formatting, typed

Format = Literal["text", "openmetrics"]

# Escapings under which a name of only [a-zA-Z0-9_] is written unchanged.
_VERBATIM_ESCAPINGS = {om_exposition.UNDERSCORES, om_exposition.ALLOWUTF8}
_PLAIN_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_SUFFIX = {"gauge": "", "counter": "_total"}


def format_of(encoder: Callable[..., bytes]) -> Format | None:
    """The format `choose_encoder` picked, where this module writes it identically."""
    if encoder is exposition.generate_latest:
        return "text"
    if not isinstance(encoder, functools.partial):
        return None
    if encoder.keywords.get("escaping") not in _VERBATIM_ESCAPINGS:
        return None
    if encoder.func is exposition.generate_latest:
        return "text"
    if encoder.func is om_exposition.generate_latest:
        return "openmetrics"
    return None


@functools.lru_cache(maxsize=4096)
def _plain_name(name: str) -> bool:
    return _PLAIN_NAME.fullmatch(name) is not None and not name.startswith("__")


@functools.lru_cache(maxsize=4096)
def _header(fmt: Format, name: str, kind: str, documentation: str) -> str:
    help_text = documentation.replace("\\", r"\\").replace("\n", r"\n")
    if fmt == "openmetrics":
        help_text = help_text.replace('"', r"\"")
        return f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"
    name += _SUFFIX[kind]
    return f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"


def _label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def encode(families: Iterable[Metric], fmt: Format) -> bytes | None:
    """The exposition of `families`, or None where one falls outside the plain shape."""
    lines: list[str] = []
    append = lines.append
    for family in families:
        kind = family.type
        suffix = _SUFFIX.get(kind)
        if suffix is None or family.unit or not _plain_name(family.name):
            return None
        append(_header(fmt, family.name, kind, family.documentation))
        sample_name = family.name + suffix
        for sample in family.samples:
            if (
                sample.name != sample_name
                or sample.value is None
                or sample.timestamp is not None
                or sample.exemplar is not None
                or sample.native_histogram is not None
            ):
                return None
            labels = sample.labels
            if not labels:
                append(f"{sample_name} {go_float(sample.value)}\n")
                continue
            pairs = []
            for label, value in sorted(labels.items()):
                if not _plain_name(label):
                    return None
                pairs.append(f'{label}="{_label_value(value)}"')
            append(f"{sample_name}{{{','.join(pairs)}}} {go_float(sample.value)}\n")
    if fmt == "openmetrics":
        append("# EOF\n")
    return "".join(lines).encode("utf-8")

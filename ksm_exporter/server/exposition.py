"""One collection's metric families, encoded once per format and compression."""

from __future__ import annotations

import functools
import gzip
from collections.abc import Callable, Iterable

from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.metrics_core import Metric

from ksm_exporter.server import text_encoding

Encoder = Callable[..., bytes]


@functools.lru_cache(maxsize=64)
def negotiate(accept: str) -> tuple[Encoder, str, text_encoding.Format | None]:
    """(library encoder, content type, fast format) for an Accept header; scrapers repeat theirs."""
    encoder, content_type = choose_encoder(accept)
    return encoder, content_type, text_encoding.format_of(encoder)


class Exposition:
    """Concurrent scrapes that share a collection also share its encoded bytes."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families
        self._encoded: dict[tuple[str, bool], bytes] = {}

    def collect(self) -> Iterable[Metric]:
        return self.families

    def render(self, accept: str, accept_encoding: str) -> tuple[bytes, str, bool]:
        """Return (body, content type, gzipped) for the scraper's Accept headers."""
        encoder, content_type, fast_format = negotiate(accept)
        compressed = gzip_accepted(accept_encoding)
        key = (content_type, compressed)
        body = self._encoded.get(key)
        if body is None:
            plain = self._encoded.get((content_type, False))
            if plain is None:
                plain = text_encoding.encode(self.families, fast_format) if fast_format else None
                if plain is None:
                    plain = encoder(self)
                self._encoded[(content_type, False)] = plain
            body = gzip.compress(plain, compresslevel=6) if compressed else plain
            self._encoded[key] = body
        return body, content_type, compressed

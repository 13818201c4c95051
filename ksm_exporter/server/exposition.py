"""One collection's metric families, encoded once per format and compression."""

from __future__ import annotations

import gzip
from collections.abc import Iterable

from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.metrics_core import Metric


class Exposition:
    """Concurrent scrapes that share a collection also share its encoded bytes."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families
        self._encoded: dict[tuple[str, bool], bytes] = {}

    def collect(self) -> Iterable[Metric]:
        return self.families

    def render(self, accept: str, accept_encoding: str) -> tuple[bytes, str, bool]:
        """Return (body, content type, gzipped) for the scraper's Accept headers."""
        encoder, content_type = choose_encoder(accept)
        compressed = gzip_accepted(accept_encoding)
        key = (content_type, compressed)
        body = self._encoded.get(key)
        if body is None:
            plain = self._encoded.get((content_type, False))
            if plain is None:
                plain = self._encoded[(content_type, False)] = encoder(self)
            body = gzip.compress(plain, compresslevel=6) if compressed else plain
            self._encoded[key] = body
        return body, content_type, compressed

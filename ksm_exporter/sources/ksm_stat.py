"""`<procfs>/<pid>/ksm_stat` and `ksm_merging_pages`: one process's KSM counters, parsed by key."""

from __future__ import annotations

from dataclasses import dataclass, fields

from ksm_exporter.sources.kernel_file import BadValue, parse_signed, parse_unsigned


@dataclass(frozen=True, slots=True)
class KsmStat:
    """A process's KSM counters; a field is None when the kernel does not report it.

    Kernels 5.19-6.0 have only `ksm_merging_pages` (a file of its own); as captured from real
    kernels (tests/fixtures/kernels/), 6.1's `ksm_stat` has only `ksm_rmap_items`, 6.12's
    adds the zero pages, merging pages and profit lines, and 6.18's `ksm_merge_any:` and
    `ksm_mergeable:` too.
    """

    rmap_items: int | None = None
    zero_pages: int | None = None
    merging_pages: int | None = None
    profit: int | None = None
    merge_any: bool | None = None
    mergeable: bool | None = None

    @property
    def registered(self) -> bool:
        """KSM tracks some of its pages: it has rmap items, or pages already merged."""
        return bool(self.rmap_items) or bool(self.merging_pages)

    def present(self) -> frozenset[str]:
        return frozenset(f.name for f in fields(self) if getattr(self, f.name) is not None)


def parse_yes_no(raw: bytes) -> bool:
    text = raw.strip()
    if text not in (b"yes", b"no"):
        raise BadValue("not yes or no")
    return text == b"yes"


# Key as the kernel writes it (without the colon some lines carry) -> (field, parser).
KEYS = {
    b"ksm_rmap_items": ("rmap_items", parse_unsigned),
    b"ksm_zero_pages": ("zero_pages", parse_unsigned),
    b"ksm_merging_pages": ("merging_pages", parse_unsigned),
    b"ksm_process_profit": ("profit", parse_signed),
    b"ksm_merge_any": ("merge_any", parse_yes_no),
    b"ksm_mergeable": ("mergeable", parse_yes_no),
}


def parse_ksm_stat(raw: bytes) -> KsmStat:
    """Parse `key value` lines by key; unknown keys (newer kernels) are ignored.

    Raises BadValue on content that is not such lines, repeats a key, or has no known key.
    """
    values: dict[str, object] = {}
    for line in raw.split(b"\n"):
        if not line:
            continue
        key, sep, text = line.partition(b" ")
        if not sep or not key:
            raise BadValue("not key value lines")
        known = KEYS.get(key.removesuffix(b":"))
        if known is None:
            continue
        name, parse = known
        if name in values:
            raise BadValue(f"{key.decode('ascii', 'replace')} appears twice")
        values[name] = parse(text)
    if not values:
        raise BadValue("no KSM counter")
    return KsmStat(**values)  # type: ignore[arg-type]


def parse_merging_pages(raw: bytes) -> KsmStat:
    """`ksm_merging_pages`: the one number kernels 5.19-6.0 give per process."""
    return KsmStat(merging_pages=parse_unsigned(raw))

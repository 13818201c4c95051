"""`<procfs>/<pid>/ksm_stat` and `ksm_merging_pages`: one process's KSM counters, parsed by key.

Every counter is declared once in PROCESS_FIELDS: the key the kernel writes, its parser, the
per-process metric and HELP, and the HELP of the sum over processes without series of their
own. Parsing, the per-process families, the "other" sums and the documentation table all come
from this table (fs/proc/base.c: proc_pid_ksm_stat() writes the lines), so serving one more
counter is one declaration here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ksm_exporter.sources.kernel_file import BadValue, parse_signed, parse_unsigned


def parse_yes_no(raw: bytes) -> bool:
    text = raw.strip()
    if text not in (b"yes", b"no"):
        raise BadValue("not yes or no")
    return text == b"yes"


@dataclass(frozen=True, slots=True)
class ProcessField:
    """One `ksm_stat` line and the per-process metric it becomes."""

    name: str  # how the exporter calls it: the key without its `ksm_` prefix
    key: str  # as the kernel writes it, without the colon some lines carry
    metric: str
    help: str
    # HELP of `ksm_process_other_<...>`, the sum over the processes without series of their
    # own; None where a sum means nothing (a yes/no line).
    other_help: str | None = None
    parse: Callable[[bytes], int | bool] = parse_unsigned
    # The field whose presence the metric needs, where it is not the field itself (the
    # profit, which the documented formula computes from the rmap items where the kernel
    # lacks the line).
    needs: str | None = None


PROCESS_FIELDS: tuple[ProcessField, ...] = (
    ProcessField(
        "merging_pages",
        "ksm_merging_pages",
        "ksm_process_merging_pages",
        "Pages of the process merged by KSM (ksm_merging_pages).",
        "Merged pages of the registered processes without series of their own.",
    ),
    ProcessField(
        "rmap_items",
        "ksm_rmap_items",
        "ksm_process_rmap_items",
        "KSM rmap items of the process: pages KSM tracks, 64 bytes of metadata each.",
        "KSM rmap items of the registered processes without series of their own.",
    ),
    ProcessField(
        "zero_pages",
        "ksm_zero_pages",
        "ksm_process_zero_pages",
        "Empty pages of the process merged with the kernel zero page.",
        "Zero-page merges of the registered processes without series of their own.",
    ),
    ProcessField(
        "profit",
        "ksm_process_profit",
        "ksm_process_profit_bytes",
        "Memory KSM saves in the process net of its rmap item metadata; may be negative.",
        "KSM profit of the registered processes without series of their own.",
        parse=parse_signed,
        needs="rmap_items",
    ),
    ProcessField(
        "merge_any",
        "ksm_merge_any",
        "ksm_process_merge_any",
        "1 when all of the process's memory is mergeable (prctl PR_SET_MEMORY_MERGE).",
        parse=parse_yes_no,
    ),
    ProcessField(
        "mergeable",
        "ksm_mergeable",
        "ksm_process_mergeable",
        "1 when the process has memory areas registered with KSM.",
        parse=parse_yes_no,
    ),
)


@dataclass(frozen=True, slots=True, init=False)
class KsmStat:
    """A process's KSM counters by field name; a field is absent when the kernel does not
    report it.

    Kernels 5.19-6.0 have only `ksm_merging_pages` (a file of its own); as captured from real
    kernels (tests/fixtures/kernels/), 6.1's `ksm_stat` has only `ksm_rmap_items`, 6.12's
    adds the zero pages, merging pages and profit lines, and 6.18's `ksm_merge_any:` and
    `ksm_mergeable:` too.
    """

    values: dict[str, int | bool]

    def __init__(
        self, values: Mapping[str, int | bool] | None = None, **fields: int | bool | None
    ) -> None:
        given = {**(values or {}), **fields}
        object.__setattr__(self, "values", {k: v for k, v in given.items() if v is not None})

    def get(self, name: str) -> int | bool | None:
        return self.values.get(name)

    def _number(self, name: str) -> int | None:
        value = self.values.get(name)
        return None if value is None else int(value)

    # Typed access to the counters the exporter computes with.
    @property
    def rmap_items(self) -> int | None:
        return self._number("rmap_items")

    @property
    def zero_pages(self) -> int | None:
        return self._number("zero_pages")

    @property
    def merging_pages(self) -> int | None:
        return self._number("merging_pages")

    @property
    def profit(self) -> int | None:
        return self._number("profit")

    @property
    def registered(self) -> bool:
        """Registered with KSM: `ksm_mergeable: yes` (ksm_process_mergeable(): some area is
        VM_MERGEABLE, known even before ksmd's first visit or while KSM is stopped), or rmap
        items or merged pages (the only signs on kernels without that line, which cannot
        tell a registered process ksmd has not visited yet from one not registered)."""
        mergeable = self.values.get("mergeable") is True
        return mergeable or bool(self.rmap_items) or bool(self.merging_pages)

    def present(self) -> frozenset[str]:
        return frozenset(self.values)

    def with_values(self, **fields: int | bool) -> KsmStat:
        return KsmStat({**self.values, **fields})


def keys_of(fields: tuple[ProcessField, ...]) -> dict[bytes, ProcessField]:
    """The parser's index of a table of fields: key as the kernel writes it -> field."""
    return {spec.key.encode("ascii"): spec for spec in fields}


_KEYS = keys_of(PROCESS_FIELDS)


def parse_ksm_stat(raw: bytes, keys: Mapping[bytes, ProcessField] = _KEYS) -> KsmStat:
    """Parse `key value` lines by key; unknown keys (newer kernels) are ignored.

    Raises BadValue on content that is not such lines, repeats a key, or has no known key.
    """
    values: dict[str, int | bool] = {}
    for line in raw.split(b"\n"):
        if not line:
            continue
        key, sep, text = line.partition(b" ")
        if not sep or not key:
            raise BadValue("not key value lines")
        spec = keys.get(key.removesuffix(b":"))
        if spec is None:
            continue
        if spec.name in values:
            raise BadValue(f"{key.decode('ascii', 'replace')} appears twice")
        values[spec.name] = spec.parse(text)
    if not values:
        raise BadValue("no KSM counter")
    return KsmStat(values)


def parse_merging_pages(raw: bytes) -> KsmStat:
    """`ksm_merging_pages`: the one number kernels 5.19-6.0 give per process."""
    return KsmStat(merging_pages=parse_unsigned(raw))

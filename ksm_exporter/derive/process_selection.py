"""Which registered processes get series of their own, and the sums of the rest.

Cardinality stays bounded: the `limit` processes with the most merging pages get their own
series, plus every process the operator always wants to see; the others are summed, so the
per-process series and the `other` sums together always add up to the whole.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from ksm_exporter.derive.savings import RMAP_ITEM_BYTES
from ksm_exporter.sources.kernel_file import Problem
from ksm_exporter.sources.ksm_stat import PROCESS_FIELDS, KsmStat, ProcessField
from ksm_exporter.sources.process_identity import ProcessIdentity
from ksm_exporter.sources.process_sweep import ProcessKsm, ProcessSweep


def process_profit_bytes(stat: KsmStat, page_size: int) -> int | None:
    """The kernel's ksm_process_profit, or its documented formula where the kernel lacks it:
    (merging + zero pages) * page size - rmap items * 64. Unknown without rmap items.
    """
    if stat.profit is not None:
        return stat.profit
    if stat.rmap_items is None or stat.merging_pages is None:
        return None
    saved = (stat.merging_pages + (stat.zero_pages or 0)) * page_size
    return saved - stat.rmap_items * RMAP_ITEM_BYTES


def process_value(spec: ProcessField, stat: KsmStat, page_size: int) -> int | bool | None:
    """A field's value as served: the kernel's, but the profit falls back to the formula."""
    if spec.name == "profit":
        return process_profit_bytes(stat, page_size)
    return stat.get(spec.name)


def _most_merging_first(process: ProcessKsm) -> tuple[int, int, int]:
    return (-(process.stat.merging_pages or 0), -(process.stat.rmap_items or 0), process.pid)


@dataclass(frozen=True, slots=True)
class ProcessSelection:
    own: tuple[ProcessKsm, ...]  # each gets its own series, most merging pages first
    other: tuple[ProcessKsm, ...]  # summed into the `other` series


def select_processes(
    registered: Iterable[ProcessKsm], limit: int, always: Collection[int] = ()
) -> ProcessSelection:
    """The `limit` processes with the most merging pages, plus those whose pid is in `always`.

    Always-included processes do not push others out: the top `limit` stay the same whatever
    matches, so adding a pattern never hides a process that was shown before.
    """
    ranked = sorted(registered, key=_most_merging_first)
    own = [p for i, p in enumerate(ranked) if i < limit or p.pid in always]
    other = [p for i, p in enumerate(ranked) if i >= limit and p.pid not in always]
    return ProcessSelection(tuple(own), tuple(other))


def always_included(
    identities: dict[int, ProcessIdentity], pattern: re.Pattern[str] | None
) -> set[int]:
    """Pids one of whose labels (command name, guest name, cgroup path...) matches the
    pattern anywhere."""
    if pattern is None:
        return set()
    return {
        pid
        for pid, who in identities.items()
        if any(pattern.search(text) for text in who.labels.values())
    }


@dataclass(frozen=True, slots=True)
class ProcessReading:
    """One sweep, the selection made from it, and who the selected processes are."""

    sweep: ProcessSweep
    selection: ProcessSelection
    identities: dict[int, ProcessIdentity] = field(default_factory=dict)

    @property
    def problems(self) -> tuple[Problem, ...]:
        return self.sweep.problems


@dataclass(frozen=True, slots=True)
class OtherSums:
    processes: int
    sums: dict[str, int]  # field name -> sum, for every field declared with an "other" sum


def sum_other(
    processes: Iterable[ProcessKsm],
    page_size: int,
    fields: tuple[ProcessField, ...] = PROCESS_FIELDS,
) -> OtherSums:
    """Sums of what each process reports; a counter the kernel lacks adds nothing."""
    summed = [spec for spec in fields if spec.other_help is not None]
    sums = dict.fromkeys((spec.name for spec in summed), 0)
    count = 0
    for process in processes:
        count += 1
        for spec in summed:
            sums[spec.name] += int(process_value(spec, process.stat, page_size) or 0)
    return OtherSums(count, sums)


@dataclass(frozen=True, slots=True)
class ProcessStates:
    registered: int
    merging: int


def count_states(registered: Collection[ProcessKsm]) -> ProcessStates:
    merging = sum(1 for p in registered if p.stat.merging_pages)
    return ProcessStates(registered=len(registered), merging=merging)

"""The chain of checks behind `status --why`, on the counters real kernels write: each cause
is named only where the counters prove it, the first that holds wins, and what cannot be told
is "unknown" with the reason."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest

from ksm_exporter.derive.causes import (
    REASONS,
    Explanation,
    HostFacts,
    Needs,
    ProcessFacts,
    TunerAtWork,
    explain,
    merges_little,
)
from ksm_exporter.derive.other_tuners import TunerChoice
from ksm_exporter.sources.ksm_stat import KsmStat
from ksm_exporter.sources.smaps import MemorySizes, MergeableAreas, Unreadable
from ksm_exporter.sources.sysfs import KsmSysfs
from ksm_exporter.sources.systemd_unit import MemoryKsmSetting
from ksm_exporter.sources.thp import HugePages
from ksm_exporter.sources.vmstat import KsmEvents
from tests.support.metrics_doc import documented_rows

pytestmark = pytest.mark.unit

PAGE = 4096
KSM_DIR = "/sys/kernel/mm/ksm"
# 6.18's ksm_stat of a process that registered 16 MiB with madvise and ksmd has visited
# every page of, none merged.
VISITED = KsmStat(
    rmap_items=4096, zero_pages=0, merging_pages=0, profit=-262144, merge_any=False,
    mergeable=True,
)  # fmt: skip
AREAS = MergeableAreas(1, 16 << 20, MemorySizes(16 << 20, 16 << 20, 0, 0))


def host(**values: int) -> HostFacts:
    settings = {
        "run": 1, "pages_to_scan": 1000, "sleep_millisecs": 20, "pages_shared": 0,
        "pages_sharing": 0, "pages_unshared": 4096, "pages_volatile": 0, "full_scans": 40,
        "smart_scan": 0, "use_zero_pages": 0,
    }  # fmt: skip
    return HostFacts(KsmSysfs(True, values={**settings, **values}), KSM_DIR, PAGE, ())


def facts(stat: KsmStat | None, mem_merge_off: str | None = None) -> ProcessFacts:
    return ProcessFacts(7, stat, "/proc/7/ksm_stat", "/proc/7/cmdline", mem_merge_off)


def run_chain(process: ProcessFacts, on: HostFacts, **inputs: Any) -> Explanation:
    """The chain, given each input it asks for from `inputs`; an input asked for twice or not
    given fails the test."""
    asked: list[str] = []
    while True:
        answer = explain(process, on)
        if not isinstance(answer, Needs):
            return answer
        assert answer.what not in asked, f"{answer.what} asked for twice"
        asked.append(answer.what)
        value = inputs[answer.what]
        if answer.what in ("huge_pages", "events", "tuners"):
            given: dict[str, Any] = {answer.what: value}
            on = replace(on, **given)
        else:
            given = {answer.what: value}
            process = replace(process, **given)


ALL_INPUTS: dict[str, Any] = {
    "memory": AREAS,
    "memory_ksm": None,
    "huge_pages": HugePages("madvise", 0),
    "events": KsmEvents(0, 0),
}


def test_merging_little_is_fewer_than_one_in_twenty_tracked_pages_merged() -> None:
    assert merges_little(VISITED)
    assert not merges_little(VISITED.with_values(merging_pages=4096))
    assert merges_little(VISITED.with_values(rmap_items=0))
    assert not merges_little(KsmStat(rmap_items=10))  # 6.1 without its merging pages read


def test_a_stopped_ksm_names_the_tuner_that_runs_here_and_its_rule() -> None:
    choice = TunerChoice(0, None, None, "QEMU's resident memory plus the threshold fits in RAM")
    on = host(run=0)
    on = HostFacts(on.ksm, KSM_DIR, PAGE, (TunerAtWork("ksmtuned", 812, choice),))
    explanation = run_chain(facts(VISITED), on, **ALL_INPUTS)
    assert explanation.reason == "ksm_stopped"
    assert "ksmtuned runs here (pid 812): QEMU's resident memory" in explanation.sentence
    assert len(explanation.checks) == 1


def test_a_stopped_ksm_without_a_tuner_says_no_known_tuner_runs() -> None:
    explanation = run_chain(facts(VISITED), host(run=0), **ALL_INPUTS)
    assert "no tuner known to the exporter runs here" in explanation.sentence
    assert run_chain(facts(VISITED), host(run=2), **ALL_INPUTS).reason == "ksm_unmerging"
    assert run_chain(facts(VISITED), host(run=5), **ALL_INPUTS).reason == "ksm_stopped"


NOT_REGISTERED = KsmStat(
    rmap_items=0, zero_pages=0, merging_pages=0, profit=0, merge_any=False, mergeable=False
)


def test_qemu_mem_merge_off_comes_before_plain_not_registered() -> None:
    process = facts(NOT_REGISTERED, "-machine mem-merge=off")
    explanation = run_chain(process, host(), **ALL_INPUTS)
    assert explanation.reason == "qemu_mem_merge_off"
    assert explanation.checks[-1].evidence[-1].value == "-machine mem-merge=off"


def test_a_unit_asking_for_memory_ksm_without_merge_any_is_named() -> None:
    unit = MemoryKsmSetting("web.service", True, "/etc/systemd/system/web.service")
    inputs = {**ALL_INPUTS, "memory_ksm": unit}
    assert run_chain(facts(NOT_REGISTERED), host(), **inputs).reason == "memory_ksm_not_applied"
    assert run_chain(facts(NOT_REGISTERED), host(), **ALL_INPUTS).reason == "not_registered"


# 6.1's ksm_stat: only the rmap items; merging pages from ksm_merging_pages.
OLD_KERNEL = KsmStat(rmap_items=0, merging_pages=0)


def test_before_6_14_registration_comes_from_the_mg_flags() -> None:
    none = MergeableAreas(0, 0, MemorySizes(0, 0, 0))
    explanation = run_chain(facts(OLD_KERNEL), host(), **{**ALL_INPUTS, "memory": none})
    assert explanation.reason == "not_registered"
    # Registered but not visited yet: the mg area is there, no rmap item.
    explanation = run_chain(facts(OLD_KERNEL), host(), **ALL_INPUTS)
    assert explanation.reason == "not_reached"


def test_an_unreadable_smaps_leaves_registration_unknown_never_a_cause() -> None:
    denied = Unreadable("/proc/7/smaps", "needs ptrace read access to the process")
    explanation = run_chain(facts(OLD_KERNEL), host(), **{**ALL_INPUTS, "memory": denied})
    assert explanation.reason == "unknown"
    assert explanation.sentence.startswith("whether it registered any memory")
    assert "needs ptrace read access" in explanation.sentence


def test_not_reached_says_how_long_a_pass_takes_at_this_pace() -> None:
    stat = VISITED.with_values(rmap_items=100)
    explanation = run_chain(
        facts(stat), host(pages_to_scan=10, sleep_millisecs=1000, pages_unshared=100), **ALL_INPUTS
    )
    assert explanation.reason == "not_reached"
    # 100 tracked + 3996 untracked pages, 10 a wake-up, 1 s apart: 410 s at least.
    assert "tracks 100 of its 4096 registered resident pages" in explanation.sentence
    assert "at least 410 s" in explanation.sentence


def test_volatile_only_where_pages_unshared_cannot_hold_its_pages() -> None:
    assert (
        run_chain(facts(VISITED), host(pages_unshared=0, pages_volatile=4096), **ALL_INPUTS).reason
        == "volatile"
    )
    # The host holds enough unshared pages for all of them: unique, not volatile.
    assert run_chain(facts(VISITED), host(), **ALL_INPUTS).reason == "unique"


def test_under_smart_scan_volatile_cannot_be_told() -> None:
    explanation = run_chain(
        facts(VISITED), host(smart_scan=1, pages_unshared=0, pages_volatile=4096), **ALL_INPUTS
    )
    volatile = next(c for c in explanation.checks if c.reason == "volatile")
    assert volatile.holds is None
    assert explanation.reason == "unknown"  # nor unique: pages_volatile may hold them all


def test_mixed_host_counters_leave_unique_unknown() -> None:
    explanation = run_chain(
        facts(VISITED), host(pages_unshared=3000, pages_volatile=3000), **ALL_INPUTS
    )
    unique = next(c for c in explanation.checks if c.reason == "unique")
    assert unique.holds is None


def test_huge_pages_come_after_volatile_and_before_unique() -> None:
    huge = MergeableAreas(1, 16 << 20, MemorySizes(16 << 20, 16 << 20, 16 << 20, 0))
    explanation = run_chain(facts(VISITED), host(), **{**ALL_INPUTS, "memory": huge})
    assert explanation.reason == "huge_pages"
    assert (
        "100% of its registered memory is still in transparent huge pages (THP madvise)"
        in explanation.sentence
    )


def test_zero_pages_come_before_volatile() -> None:
    zero = VISITED.with_values(zero_pages=4000)
    assert run_chain(facts(zero), host(use_zero_pages=1), **ALL_INPUTS).reason == "zero_pages"


def test_copy_on_write_counted_host_wide_is_never_the_cause() -> None:
    mixed = host(pages_unshared=3000, pages_volatile=3000)
    events = {**ALL_INPUTS, "events": KsmEvents(12, None)}
    explanation = run_chain(facts(VISITED), mixed, **events)
    assert explanation.reason == "unknown"
    assert "12 KSM pages were copied on this host since boot" in explanation.sentence
    cow = explanation.checks[-1]
    assert (cow.reason, cow.holds) == ("copy_on_write", None)
    none_copied = run_chain(facts(VISITED), mixed, **ALL_INPUTS).checks[-1]
    assert (none_copied.reason, none_copied.holds) == ("copy_on_write", False)
    no_counters = {**ALL_INPUTS, "events": KsmEvents(None, None)}
    explanation = run_chain(facts(VISITED), mixed, **no_counters)
    assert "no cow_ksm or ksm_swpin_copy" in explanation.sentence


def test_a_process_that_exited_is_said_to_have_exited() -> None:
    explanation = run_chain(facts(None), host(), **ALL_INPUTS)
    assert explanation.reason == "unknown"
    assert explanation.sentence == "process 7 exited while it was explained"


def test_a_process_that_merges_well_says_so() -> None:
    explanation = run_chain(facts(VISITED.with_values(merging_pages=4000)), host(), **ALL_INPUTS)
    assert explanation.reason == "merges_well"


def test_ksm_absent_is_the_first_cause() -> None:
    on = HostFacts(KsmSysfs(False), KSM_DIR, PAGE, ())
    assert run_chain(facts(VISITED), on, **ALL_INPUTS).reason == "ksm_unavailable"


def test_the_metric_doc_lists_exactly_the_reasons_a_series_may_carry() -> None:
    source = documented_rows()["ksm_process_merging_little_info"][2]
    named = set(re.findall(r"`([a-z_]+)`", source))
    assert set(REASONS) <= named
    assert not (named & {"merges_well", "copy_on_write"})

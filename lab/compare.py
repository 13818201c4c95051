"""Agreement between a capture of a kernel's KSM files and the exporter's exposition.

The expected value of every series is worked out here from the files as the kernel wrote
them, with the units and formulas of the kernel's documentation
(Documentation/admin-guide/mm/ksm.rst) and of the metric contract, never with the exporter's
own declarations, divisors or formulas: a wrong divisor or profit formula in the exporter
makes a check differ. A series whose file the kernel lacks must be absent. A KSM file that
this module does not know is reported by `unknown_files`, so a new kernel file gets its
expected value written here before it counts as checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.exposition import Samples, parse_samples
from lab.captures import Capture

MILLISECONDS = 1000
PERCENT = 100
NANOSECONDS = 1_000_000_000
KIB = 1024
RMAP_ITEM_BYTES = 64  # sizeof(struct ksm_rmap_item) on 64-bit, as ksm.rst's formulas use

# Each KSM file that holds one number: (metric, what the file's value is divided by to give
# the metric's unit). From ksm.rst: sleep_millisecs and stable_node_chains_prune_millisecs
# are milliseconds, advisor_max_cpu a percentage of one CPU, advisor_target_scan_time
# seconds; full_scans, pages_scanned and pages_skipped only grow (counters); general_profit
# is bytes and may be negative.
NUMERIC_FILES: dict[str, tuple[str, int]] = {
    "run": ("ksm_run", 1),
    "pages_to_scan": ("ksm_pages_to_scan", 1),
    "sleep_millisecs": ("ksm_sleep_seconds", MILLISECONDS),
    "pages_shared": ("ksm_pages_shared", 1),
    "pages_sharing": ("ksm_pages_sharing", 1),
    "pages_unshared": ("ksm_pages_unshared", 1),
    "pages_volatile": ("ksm_pages_volatile", 1),
    "full_scans": ("ksm_full_scans_total", 1),
    "merge_across_nodes": ("ksm_merge_across_nodes", 1),
    "use_zero_pages": ("ksm_use_zero_pages", 1),
    "max_page_sharing": ("ksm_max_page_sharing", 1),
    "stable_node_chains": ("ksm_stable_node_chains", 1),
    "stable_node_dups": ("ksm_stable_node_dups", 1),
    "stable_node_chains_prune_millisecs": ("ksm_stable_node_chains_prune_seconds", MILLISECONDS),
    "general_profit": ("ksm_general_profit_bytes", 1),
    "ksm_zero_pages": ("ksm_zero_pages", 1),
    "pages_scanned": ("ksm_pages_scanned_total", 1),
    "smart_scan": ("ksm_smart_scan", 1),
    "pages_skipped": ("ksm_pages_skipped_total", 1),
    "advisor_max_cpu": ("ksm_advisor_max_cpu_ratio", PERCENT),
    "advisor_target_scan_time": ("ksm_advisor_target_scan_time_seconds", 1),
    "advisor_min_pages_to_scan": ("ksm_advisor_min_pages_to_scan", 1),
    "advisor_max_pages_to_scan": ("ksm_advisor_max_pages_to_scan", 1),
}
WORDED_FILES = frozenset({"advisor_mode"})  # `[none] scan-time`: checked one mode at a time
# ksm_stat lines that are counts, and the yes/no lines, by the series they give.
PROCESS_COUNTS = {
    "ksm_process_merging_pages": "ksm_merging_pages",
    "ksm_process_rmap_items": "ksm_rmap_items",
    "ksm_process_zero_pages": "ksm_zero_pages",
}
PROCESS_FLAGS = {
    "ksm_process_merge_any": "ksm_merge_any",
    "ksm_process_mergeable": "ksm_mergeable",
}


@dataclass(frozen=True)
class Check:
    series: str
    expected: float | None  # None: the series must be absent
    actual: float | None

    @property
    def differs(self) -> bool:
        if self.expected is None or self.actual is None:
            return self.expected is not self.actual
        return not math.isclose(self.expected, self.actual, rel_tol=1e-12)

    def __str__(self) -> str:
        return f"{self.series}: kernel {self.expected}, exporter {self.actual}"


def _find(samples: Samples, name: str, **labels: str) -> float | None:
    for (sample, sample_labels), value in samples.items():
        if sample == name and set(labels.items()) <= set(sample_labels):
            return value
    return None


def unknown_files(capture: Capture) -> list[str]:
    """KSM files in the capture whose expected series this module cannot state."""
    names = [path.rsplit("/", 1)[1] for path in capture.files if path.startswith("sys/")]
    return sorted(name for name in names if name not in NUMERIC_FILES and name not in WORDED_FILES)


def ksm_numbers(capture: Capture) -> dict[str, int]:
    return {name: int(raw) for name in NUMERIC_FILES if (raw := capture.ksm_file(name))}


def mem_total_bytes(capture: Capture) -> int | None:
    for line in capture.files.get("proc/meminfo", "").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * KIB  # meminfo counts in kB
    return None


def saving_series(capture: Capture) -> dict[str, float | None]:
    """ksm.rst: pages_sharing says how much is saved, and ksm_zero_pages (where the kernel
    counts them) adds the pages merged with the zero page; pages_sharing / pages_shared is
    how many more mappings each shared page has; pages_unshared / pages_sharing is the
    scanning that gains nothing."""
    ksm = ksm_numbers(capture)
    if "pages_sharing" not in ksm:
        return {}
    shared, sharing = ksm["pages_shared"], ksm["pages_sharing"]
    unshared = ksm["pages_unshared"]
    saved = (sharing + ksm.get("ksm_zero_pages", 0)) * capture.page_size
    total = mem_total_bytes(capture)
    wasted: float | None = None
    if sharing:
        wasted = unshared / sharing
    elif unshared:
        wasted = math.inf
    return {
        "ksm_memory_saved_bytes": saved,
        "ksm_memory_saved_ratio": saved / total if total else None,
        "ksm_mappings_per_shared_page": 1 + sharing / shared if shared else None,
        "ksm_unshared_pages_per_sharing_page": wasted,
    }


def ksmd_cpu_seconds(capture: Capture) -> float | None:
    """The first field of ksmd's schedstat: nanoseconds on the CPU."""
    schedstat = capture.files.get(f"proc/{capture.roles.get('ksmd')}/schedstat")
    return int(schedstat.split()[0]) / NANOSECONDS if schedstat else None


def process_series(capture: Capture, pid: int) -> dict[str, float | None]:
    """The per-process series of `pid` as its ksm_stat gives them; absent (None) for a
    process not registered with KSM. Profit, where the kernel does not write it, by ksm.rst:
    (ksm_merging_pages + ksm_zero_pages) * page size - ksm_rmap_items * sizeof(rmap_item)."""
    names = [*PROCESS_COUNTS, "ksm_process_profit_bytes", *PROCESS_FLAGS]
    if not capture.registered(pid):
        return dict.fromkeys(names)
    counts, lines = capture.counters(pid), capture.ksm_stat_lines(pid)
    found: dict[str, float | None] = {
        series: counts.get(line) for series, line in PROCESS_COUNTS.items()
    }
    profit: float | None = counts.get("ksm_process_profit")
    if profit is None and {"ksm_merging_pages", "ksm_rmap_items"} <= set(counts):
        saved = counts["ksm_merging_pages"] + counts.get("ksm_zero_pages", 0)
        profit = saved * capture.page_size - counts["ksm_rmap_items"] * RMAP_ITEM_BYTES
    found["ksm_process_profit_bytes"] = profit
    for series, line in PROCESS_FLAGS.items():
        found[series] = None if line not in lines else float(lines[line] == "yes")
    return found


def checks(capture: Capture, exposition: str) -> list[Check]:
    """One check per series the kernel's files determine, present or absent."""
    samples = parse_samples(exposition)
    found: list[Check] = [Check("ksm_available", 1.0, _find(samples, "ksm_available"))]
    for name, (metric, divisor) in NUMERIC_FILES.items():
        raw = capture.ksm_file(name)
        expected = None if raw is None else int(raw) / divisor
        found.append(Check(metric, expected, _find(samples, metric)))
    for word in (capture.ksm_file("advisor_mode") or "").split():
        mode = word.strip("[]")
        actual = _find(samples, "ksm_advisor_mode", mode=mode)
        expected = 1.0 if word.startswith("[") else 0.0
        found.append(Check(f'ksm_advisor_mode{{mode="{mode}"}}', expected, actual))
    found.append(
        Check("ksm_page_size_bytes", capture.page_size, _find(samples, "ksm_page_size_bytes"))
    )
    for metric, value in saving_series(capture).items():
        found.append(Check(metric, value, _find(samples, metric)))
    metric = "ksm_ksmd_cpu_seconds_total"
    found.append(Check(metric, ksmd_cpu_seconds(capture), _find(samples, metric)))
    registered = [pid for pid in capture.pids() if capture.registered(pid)]
    merging = [pid for pid in registered if capture.counters(pid).get("ksm_merging_pages")]
    for metric, count in (
        ("ksm_processes_registered", len(registered)),
        ("ksm_processes_merging", len(merging)),
    ):
        found.append(Check(metric, count, _find(samples, metric)))
    for pid in capture.pids():
        for metric, value in process_series(capture, pid).items():
            actual = _find(samples, metric, pid=str(pid))
            found.append(Check(f'{metric}{{pid="{pid}"}}', value, actual))
    return found


def differences(found: list[Check]) -> list[Check]:
    return [check for check in found if check.differs]

"""One host in depth: state and settings, savings, pages, cost, and who benefits."""

from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards import thresholds
from dashboards.common import (
    BAD,
    CPU_STEPS,
    GIB,
    GOOD,
    KSMD_CPU,
    ON_OFF,
    RATE_WINDOW,
    RATIO_UNIT,
    RUN_STATES,
    WARN,
    DashboardWriter,
    Panel,
    Query,
    in_bytes,
    run_state_expr,
    selector,
    threshold_query,
)

UID = "ksm-exporter-host"
TOP = 15


def build() -> Dashboard:
    board = DashboardWriter(
        UID,
        "KSM / Host",
        "Kernel Samepage Merging on one host: state, savings, cost and who benefits.",
        ["ksm", "ksm-exporter", "memory"],
    )
    board.variables(instance_multi=False)
    _state_and_settings(board)
    _savings(board)
    _pages(board)
    _cost(board)
    _processes(board)
    _exporter(board)
    return board.builder.build()


def _state_and_settings(board: DashboardWriter) -> None:
    board.row("State and settings")
    board.stat(
        Panel(
            "KSM state",
            "What ksmd is doing (run): running merges pages, stopped keeps what is merged, "
            "unmerging splits every merged page. Good: running on a host meant to deduplicate.",
            "none",
            [Query(run_state_expr(), instant=True)],
            width=4,
            mappings=RUN_STATES,
        )
    )
    board.stat(
        Panel(
            "Pages per batch",
            "Pages ksmd scans before each sleep (pages_to_scan). Together with the sleep it "
            "caps the scan rate; raise it when full scans take too long, lower it when ksmd "
            "costs too much CPU.",
            "short",
            [Query(f"ksm_pages_to_scan{selector()}", instant=True)],
            width=4,
        )
    )
    board.stat(
        Panel(
            "Sleep between batches",
            "How long ksmd sleeps between batches (sleep_millisecs). Shorter sleeps scan "
            "faster and cost more CPU.",
            "s",
            [Query(f"ksm_sleep_seconds{selector()}", instant=True)],
            width=4,
        )
    )
    board.stat(
        Panel(
            "Switches",
            "Zero-page merging (use_zero_pages, kernel 4.11+), smart scan that skips pages "
            "which did not merge recently (smart_scan, 6.7+) and merging across NUMA nodes "
            "(merge_across_nodes, NUMA kernels only). Smart scan on saves ksmd CPU.",
            "none",
            [
                Query(f"ksm_use_zero_pages{selector()}", "zero pages", instant=True),
                Query(f"ksm_smart_scan{selector()}", "smart scan", instant=True),
                Query(f"ksm_merge_across_nodes{selector()}", "across NUMA nodes", instant=True),
            ],
            width=8,
            mappings=ON_OFF,
        )
    )
    board.stat(
        Panel(
            "Scan advisor",
            "The active advisor (advisor_mode, kernel 6.8+): scan-time tunes pages_to_scan by "
            "itself to finish a full scan in the target time within the CPU ceiling; none "
            "leaves pages_to_scan as set.",
            "none",
            [Query(f"ksm_advisor_mode{selector()} == 1", "{{mode}}", instant=True)],
            width=4,
            mappings={"1": ("active", GOOD)},
            show_names=True,
        )
    )
    board.stat(
        Panel(
            "Advisor CPU ceiling",
            "The most CPU the scan-time advisor lets ksmd use (advisor_max_cpu, kernel 6.8+), "
            "as a share of one CPU. Keep it below the ksmd CPU alert threshold.",
            "percentunit",
            [Query(f"ksm_advisor_max_cpu_ratio{selector()}", instant=True)],
            width=4,
            steps=((None, GOOD), (thresholds.KSMD_CPU_RATIO, WARN)),
        )
    )
    board.stat(
        Panel(
            "Advisor target full-scan time",
            "How long the scan-time advisor aims for one full scan to take "
            "(advisor_target_scan_time, kernel 6.8+).",
            "s",
            [Query(f"ksm_advisor_target_scan_time_seconds{selector()}", instant=True)],
            width=4,
        )
    )
    board.stat(
        Panel(
            "Max mappings per KSM page",
            "Most page mappings one KSM page may carry (max_page_sharing, kernel 4.13+); "
            "beyond it stable node chains form. The default 256 is right for most hosts.",
            "short",
            [Query(f"ksm_max_page_sharing{selector()}", instant=True)],
            width=4,
        )
    )
    board.stat(
        Panel(
            "Page size",
            "The host's page size, by which page counts become bytes on this dashboard.",
            "bytes",
            [Query(f"ksm_page_size_bytes{selector()}", instant=True)],
            width=4,
        )
    )


def _savings(board: DashboardWriter) -> None:
    board.row("Savings")
    board.stat(
        Panel(
            "Memory saved",
            "Memory KSM gives back now: (pages_sharing + ksm_zero_pages) x page size. Good: "
            "a large share of the guests' memory on hosts running many similar VMs.",
            "bytes",
            [Query(f"ksm_memory_saved_bytes{selector()}", instant=True)],
            width=6,
        )
    )
    board.stat(
        Panel(
            "Saved share of RAM",
            "Memory saved as a share of MemTotal. A few percent pays for ksmd on most hosts; "
            "near 0% while running means KSM finds nothing to merge.",
            "percentunit",
            [Query(f"ksm_memory_saved_ratio{selector()}", instant=True)],
            width=6,
        )
    )
    board.stat(
        Panel(
            "Net profit",
            "Memory saved minus the rmap_item metadata KSM spends to find it (general_profit, "
            "kernel 6.4+). Red when negative: KSM then costs more memory than it saves.",
            "bytes",
            [Query(f"ksm_general_profit_bytes{selector()}", instant=True)],
            width=6,
            steps=((None, BAD), (thresholds.PROFIT_BYTES, GOOD)),
        )
    )
    board.stat(
        Panel(
            "Mappings per shared page",
            "Mappings each shared KSM page serves (1 + pages_sharing / pages_shared). Higher "
            "is better: each shared page stands in for that many copies.",
            RATIO_UNIT,
            [Query(f"ksm_mappings_per_shared_page{selector()}", instant=True)],
            width=6,
        )
    )
    board.timeseries(
        Panel(
            "Memory saved and net profit",
            "Memory saved (pages_sharing + ksm_zero_pages) and the kernel's net profit after "
            "metadata (general_profit, kernel 6.4+), against the KsmNegativeProfit threshold. "
            "Good: both high and steady; profit below zero is a loss.",
            "bytes",
            [
                Query(f"ksm_memory_saved_bytes{selector()}", "saved"),
                Query(f"ksm_general_profit_bytes{selector()}", "net profit"),
                threshold_query("general_profit_bytes"),
            ],
            width=12,
            height=8,
            steps=((None, BAD), (thresholds.PROFIT_BYTES, GOOD)),
        )
    )
    board.timeseries(
        Panel(
            "Saved share of RAM over time",
            "Memory saved as a share of MemTotal. Steady or rising is good; a drop means "
            "guests diverged, stopped, or KSM was switched off.",
            "percentunit",
            [Query(f"ksm_memory_saved_ratio{selector()}", "saved / RAM")],
            width=12,
            height=8,
        )
    )


def _pages(board: DashboardWriter) -> None:
    board.row("Pages")
    board.timeseries(
        Panel(
            "Pages by state",
            "KSM's pages as memory: sharing (copies removed), shared (the pages kept), "
            "unshared (unique pages checked again and again), volatile (changing too fast) "
            "and zero pages merged with the kernel zero page (ksm_zero_pages, kernel 6.5+). "
            "Good: sharing far above unshared.",
            "bytes",
            [
                Query(in_bytes("ksm_pages_sharing"), "sharing"),
                Query(in_bytes("ksm_pages_shared"), "shared"),
                Query(in_bytes("ksm_pages_unshared"), "unshared"),
                Query(in_bytes("ksm_pages_volatile"), "volatile"),
                Query(in_bytes("ksm_zero_pages"), "zero pages"),
            ],
            width=12,
            height=8,
        )
    )
    board.timeseries(
        Panel(
            "Sharing and unshared ratios",
            "Mappings per shared page, higher is better. Unshared pages per sharing page: "
            "pages checked in vain per merged page (wasted effort; +Inf when none shares); above "
            f"{thresholds.UNSHARED_RATIO:g} KSM mostly scans memory that never merges "
            "(KsmHighUnsharedRatio).",
            RATIO_UNIT,
            [
                Query(f"ksm_mappings_per_shared_page{selector()}", "mappings per page"),
                Query(f"ksm_unshared_pages_per_sharing_page{selector()}", "unshared"),
                threshold_query("unshared_pages_per_sharing_page"),
            ],
            width=12,
            height=8,
            steps=((None, GOOD), (thresholds.UNSHARED_RATIO, WARN)),
        )
    )


def _cost(board: DashboardWriter) -> None:
    board.row("Cost")
    board.timeseries(
        Panel(
            "ksmd CPU",
            "Share of one CPU the ksmd kernel thread used, over 5 minutes, against this "
            "host's alert threshold. Good: a few percent. Above "
            f"{thresholds.SCANNING_CPU_RATIO:.0%} scanning must show savings "
            f"(KsmScanningWithoutSavings); above {thresholds.KSMD_CPU_RATIO:.0%} it is "
            "excessive (KsmdExcessiveCpu).",
            "percentunit",
            [Query(f"{KSMD_CPU}{selector()}", "ksmd"), threshold_query("ksmd_cpu_ratio")],
            width=8,
            height=8,
            steps=CPU_STEPS,
        )
    )
    board.timeseries(
        Panel(
            "Scan rate",
            "Memory ksmd scans per second over 5 minutes (pages_scanned, kernel 6.6+), "
            "memory smart scan skipped (pages_skipped, kernel 6.7+), and the ceiling the "
            "settings allow (pages_to_scan per sleep). Scanning far below the ceiling means "
            "ksmd is CPU-bound.",
            "binBps",
            [
                Query(f"instance:ksm_scanned_bytes:rate5m{selector()}", "scanned"),
                Query(
                    f"rate(ksm_pages_skipped_total{selector()}[{RATE_WINDOW}])"
                    " * on(job, instance) group_left ksm_page_size_bytes",
                    "skipped",
                ),
                Query(
                    f"ksm_pages_to_scan{selector()} / (ksm_sleep_seconds{selector()} > 0)"
                    " * on(job, instance) group_left ksm_page_size_bytes",
                    "ceiling",
                ),
            ],
            width=8,
            height=8,
        )
    )
    board.timeseries(
        Panel(
            "Full-scan time",
            "Wall time of the last complete pass over all mergeable memory, ksmd CPU spent "
            "per pass, and the mean time between passes over the last hour. Shorter passes "
            "find new duplicates sooner; above "
            f"{thresholds.FULL_SCAN_SECONDS:g} s merging lags behind the guests' memory "
            "(KsmFullScanTooSlow).",
            "s",
            [
                Query(f"ksm_full_scan_duration_seconds{selector()}", "wall time"),
                Query(f"ksm_full_scan_ksmd_cpu_seconds{selector()}", "ksmd CPU"),
                Query(
                    f"instance:ksm_full_scan_period_seconds:mean1h{selector()}",
                    "time between passes (1 h mean)",
                ),
                threshold_query("full_scan_duration_seconds"),
            ],
            width=8,
            height=8,
            steps=((None, GOOD), (thresholds.FULL_SCAN_SECONDS, WARN)),
        )
    )
    board.timeseries(
        Panel(
            "ksmd CPU per saved GiB",
            "Share of one CPU ksmd spends, over 5 minutes, for every GiB it saves. Lower is "
            "better; rising while savings stay flat means more effort for the same gain. "
            "Empty while ksmd uses no CPU.",
            "percentunit",
            [
                Query(
                    f"{GIB} / instance:ksm_memory_saved_bytes_per_ksmd_cpu_second:ratio_rate5m"
                    f"{selector()}",
                    "CPU per saved GiB",
                )
            ],
            width=24,
            height=8,
        )
    )


def _processes(board: DashboardWriter) -> None:
    board.row("Processes, VMs and cgroups")
    board.stat(
        Panel(
            "Processes by state",
            "Processes registered with KSM (madvise or prctl) and how many of them merge "
            "pages. Registered but not merging means effort without gain.",
            "short",
            [
                Query(f"ksm_processes_registered{selector()}", "registered", instant=True),
                Query(f"ksm_processes_merging{selector()}", "merging", instant=True),
            ],
            width=6,
            height=8,
        )
    )
    board.table(
        Panel(
            "Top processes by merged memory",
            f"The {TOP} processes with the most memory merged by KSM (ksm_merging_pages x "
            "page size). These are who KSM works for.",
            "bytes",
            [
                Query(
                    f"topk({TOP}, {in_bytes('ksm_process_merging_pages')})",
                    "merged",
                    instant=True,
                )
            ],
            width=18,
            height=8,
        )
    )
    board.table(
        Panel(
            "Top processes by profit",
            f"The {TOP} processes that gain most: merged memory minus the metadata KSM spends "
            "on them (ksm_process_profit).",
            "bytes",
            [Query(f"topk({TOP}, ksm_process_profit_bytes{selector()})", "profit", instant=True)],
            width=12,
            height=8,
            steps=((None, BAD), (thresholds.PROFIT_BYTES, GOOD)),
        )
    )
    board.table(
        Panel(
            "Registered processes gaining least",
            f"The {TOP} registered processes with the lowest profit, lowest first. Zero or "
            "negative: the process is registered with KSM but gains nothing, and its "
            "metadata costs memory; consider not registering it.",
            "bytes",
            [
                Query(
                    f"bottomk({TOP}, ksm_process_profit_bytes{selector()})",
                    "profit",
                    instant=True,
                )
            ],
            width=12,
            height=8,
            steps=((None, BAD), (thresholds.PROFIT_BYTES, GOOD)),
        ),
        sort_desc=False,
    )
    for label, title, who in (
        ("vm", "VMs by merged memory and profit", "QEMU guests (by -name)"),
        ("cgroup", "Cgroups by merged memory and profit", "Cgroups (v2 path)"),
    ):
        matcher = f'{label}!=""'
        board.table(
            Panel(
                title,
                f"{who}: memory merged by their processes and their net profit. Good: the "
                "similar workloads you expect near the top; profit at or below zero means "
                "registered without gain.",
                "bytes",
                [
                    Query(
                        f"topk({TOP}, sum by ({label}) "
                        f"({in_bytes('ksm_process_merging_pages', matcher)}))",
                        "merged",
                        instant=True,
                    ),
                    Query(
                        f"sum by ({label}) (ksm_process_profit_bytes{selector(matcher)})",
                        "profit",
                        instant=True,
                    ),
                ],
                width=12,
                height=8,
            )
        )
    board.table(
        Panel(
            "Sensitive workloads registered with KSM",
            "Processes the KsmSensitiveWorkloadMerging selector (the rule "
            "process:ksm_sensitive_workload:selected in ksm-alerts.yml) marks as sensitive, "
            "with the memory they have merged. Good: empty; merged memory here is a critical "
            "alert after 5 minutes, since merged pages let other workloads time their memory.",
            "bytes",
            [
                Query(
                    f"{in_bytes('ksm_process_merging_pages')} and on(job, instance, pid) "
                    f"process:ksm_sensitive_workload:selected{selector()}",
                    "merged",
                    instant=True,
                )
            ],
            width=12,
            height=8,
            steps=((None, GOOD), (1, BAD)),
        )
    )
    board.stat(
        Panel(
            "Processes beyond the series limit",
            "Registered processes summed into the ksm_process_other_* series because "
            "--collector.process.limit gave them no series of their own. Good: 0, or only "
            "small processes; raise the limit or use --collector.process.always-include for "
            "the ones to watch.",
            "short",
            [Query(f"ksm_process_other_processes{selector()}", instant=True)],
            width=6,
            height=8,
        )
    )
    board.stat(
        Panel(
            "Merged beyond the series limit",
            "Memory merged by the processes beyond --collector.process.limit, so the tables "
            "above plus this add up to all merged memory. Good: small next to Memory saved.",
            "bytes",
            [Query(in_bytes("ksm_process_other_merging_pages"), instant=True)],
            width=6,
            height=8,
        )
    )


def _exporter(board: DashboardWriter) -> None:
    board.row("Exporter")
    board.timeseries(
        Panel(
            "Collection time by source",
            "How long the exporter took to read each source on the last scrape. Good: "
            "milliseconds; growth follows the number of processes swept.",
            "s",
            [Query(f"ksm_exporter_collect_duration_seconds{selector()}", "{{source}}")],
            width=12,
        )
    )
    board.timeseries(
        Panel(
            "Unreadable kernel files",
            "Kernel files a source could not read or parse, per scrape interval. Good: zero; "
            "anything else is named in the exporter's log.",
            "short",
            [
                Query(
                    f"increase(ksm_exporter_collect_errors_total{selector()}[{RATE_WINDOW}])",
                    "{{source}}",
                )
            ],
            width=12,
            steps=((None, GOOD), (1, BAD)),
        )
    )

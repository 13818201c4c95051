"""One host in depth: state and settings, savings, pages, cost, and who benefits."""

from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards import thresholds
from dashboards.common import (
    BAD,
    CPU_STEPS,
    FLEET_UID,
    GIB,
    GOOD,
    HOST_UID,
    NEUTRAL,
    ON_OFF,
    RATE_WINDOW,
    RATIO_UNIT,
    RUN_STATES,
    WARN,
    DashboardWriter,
    Panel,
    Query,
    in_bytes,
    ksmd_cpu,
    needs_threshold,
    per_host,
    run_state_expr,
    selector,
    threshold_query,
    zero_per_host,
)

UID = HOST_UID
# Full scans the exporter must observe before it gives tuning advice.
TUNING_SCANS = "a few full scans (3 to judge savings; two pages_to_scan settings to fit the "
TUNING_SCANS += "cost of a batch)"
TOP = 15


def build() -> Dashboard:
    board = DashboardWriter(
        UID,
        "KSM / Host",
        "Kernel Samepage Merging on one host: state, savings, cost and who benefits.",
        ["ksm", "ksm-exporter", "memory"],
    )
    board.variables(instance_multi=False)
    board.link_to(FLEET_UID, "KSM / Fleet")
    # Each write of ksm-exporter tune (ksm_tuner_changes_total, from its state file) marked
    # on the time series, the pages_to_scan of the tuning row among them; its log and
    # ksm_tuner_last_change_timestamp_seconds say which setting and by which rule.
    board.annotation(
        "ksm-exporter tune changed a setting",
        f"changes(ksm_tuner_changes_total{selector()}[2m]) > 0",
        "orange",
    )
    _state(board)
    _savings(board)
    _settings(board)
    _pages(board)
    _cost(board)
    _tuning(board)
    _processes(board)
    _exporter(board)
    return board.builder.build()


def _state(board: DashboardWriter) -> None:
    board.row("State")
    board.stat(
        Panel(
            "KSM state",
            "What ksmd is doing (run): running merges pages, stopped keeps what is merged, "
            "unmerging splits every merged page; run reads 5 while memory is hot-unplugged "
            "(ksmd pauses). Good: running on a host meant to deduplicate. While stopped, "
            "pages_sharing and the savings built on it keep their last values.",
            "none",
            [Query(run_state_expr(), instant=True)],
            width=6,
            height=4,
            mappings=RUN_STATES,
        )
    )
    board.stat(
        Panel(
            "Processes registered with KSM",
            "Processes registered with KSM (madvise or prctl) and how many of them merge "
            "pages. Registered but not merging means effort without gain.",
            "short",
            [
                Query(f"ksm_processes_registered{selector()}", "registered", instant=True),
                Query(f"ksm_processes_merging{selector()}", "merging", instant=True),
            ],
            width=6,
            height=4,
            steps=((None, NEUTRAL),),
            show_names=True,
        )
    )
    board.stat(
        Panel(
            "Processes the exporter may not read",
            "Processes whose ksm_stat the exporter may not read: other users' processes need "
            "root or CAP_DAC_READ_SEARCH. Good: 0; otherwise their memory is missing below and "
            "the sensitive-workload alerts cannot see them (KsmExporterProcessesUnreadable).",
            "short",
            [Query(f"ksm_exporter_processes_unreadable{selector()}", instant=True)],
            width=6,
            height=4,
            steps=((None, GOOD), (1, BAD)),
        )
    )
    board.stat(
        Panel(
            "ksmd CPU now",
            "Share of one CPU the ksmd kernel thread used over the last few scrapes. Above "
            f"{thresholds.SCANNING_CPU_RATIO:.0%} scanning must show savings; above "
            f"{thresholds.KSMD_CPU_RATIO:.0%} it is excessive, unless the kernel's scan-time "
            "advisor runs with a higher ceiling.",
            "percentunit",
            [Query(ksmd_cpu(), instant=True)],
            width=6,
            height=4,
            steps=CPU_STEPS,
        )
    )


def _settings(board: DashboardWriter) -> None:
    board.row("Settings")
    columns = {
        "pages per batch": ("ksm_pages_to_scan", "short"),
        "sleep": ("ksm_sleep_seconds", "s"),
        "zero pages": ("ksm_use_zero_pages", "none"),
        "smart scan": ("ksm_smart_scan", "none"),
        "across NUMA nodes": ("ksm_merge_across_nodes", "none"),
        "max mappings per page": ("ksm_max_page_sharing", "short"),
        "advisor CPU ceiling": ("ksm_advisor_max_cpu_ratio", "percentunit"),
        "advisor target full scan": ("ksm_advisor_target_scan_time_seconds", "s"),
        "page size": ("ksm_page_size_bytes", "bytes"),
    }
    queries = [
        Query(per_host(f"{metric}{selector()}"), name, instant=True)
        for name, (metric, _unit) in columns.items()
    ]
    queries.insert(
        5,
        Query(
            per_host("ksm_advisor_mode" + selector('mode="scan-time"')),
            "scan-time advisor",
            instant=True,
        ),
    )
    board.table(
        Panel(
            "KSM settings",
            "The tunables of /sys/kernel/mm/ksm in one row: pages ksmd scans per batch "
            "(pages_to_scan) and the sleep between batches (sleep_millisecs), which together "
            "cap the scan rate; zero-page merging (use_zero_pages, since 4.11), smart scan "
            "(smart_scan, since 6.7, saves ksmd CPU), merging across NUMA nodes "
            "(merge_across_nodes, NUMA kernels only), the most mappings one KSM page may "
            "carry (max_page_sharing, since 4.13), whether the scan-time advisor tunes "
            "pages_to_scan itself (advisor_mode, since 6.8) with its CPU ceiling "
            "(advisor_max_cpu, since 6.8) and target full-scan time "
            "(advisor_target_scan_time, since 6.8), and the page size. A column a kernel "
            "lacks stays empty.",
            "none",
            queries,
            width=24,
            height=4,
            column_units={name: unit for name, (_metric, unit) in columns.items()},
            column_mappings={
                name: ON_OFF
                for name in ("zero pages", "smart scan", "across NUMA nodes", "scan-time advisor")
            },
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
            width=5,
        )
    )
    board.stat(
        Panel(
            "Saved share of RAM",
            "Memory saved as a share of MemTotal. A few percent pays for ksmd on most hosts; "
            "near 0% while running means KSM finds nothing to merge.",
            "percentunit",
            [Query(f"ksm_memory_saved_ratio{selector()}", instant=True)],
            width=5,
        )
    )
    board.stat(
        Panel(
            "Net profit",
            "Memory saved minus the rmap_item metadata KSM spends to find it "
            "(general_profit, since 6.4). Red when negative: KSM then costs more memory than "
            "it saves.",
            "bytes",
            [Query(f"ksm_general_profit_bytes{selector()}", instant=True)],
            width=5,
            steps=((None, BAD), (thresholds.PROFIT_BYTES, GOOD)),
        )
    )
    board.stat(
        Panel(
            "Mappings per KSM page",
            "Mappings per shared KSM page (1 + pages_sharing / pages_shared: the first "
            "mapping of each KSM page counts in pages_shared). Higher is better: each shared "
            "page stands in for that many copies. Empty while nothing is shared.",
            RATIO_UNIT,
            [Query(f"ksm_mappings_per_shared_page{selector()}", instant=True)],
            width=4,
        )
    )
    board.stat(
        Panel(
            "Merged now, per process",
            "Memory merged in the registered processes, summed from their ksm_stat "
            "(ksm_process_merging_pages plus ksm_process_other_merging_pages) x page size. "
            "Each mapping of a KSM page counts, the first one too (stable_tree_append()), so "
            "this is pages_shared + pages_sharing pages, more than Memory saved; like "
            "pages_sharing it changes only in ksmd's passes and at exit, not when a process "
            "unmerges.",
            "bytes",
            [
                Query(
                    f"(sum by (cluster, job, instance) (ksm_process_merging_pages{selector()})"
                    f" or 0 * ksm_process_other_merging_pages{selector()})"
                    f" + on(cluster, job, instance) ksm_process_other_merging_pages{selector()}"
                    " * on(cluster, job, instance) group_left ksm_page_size_bytes",
                    instant=True,
                )
            ],
            width=5,
        )
    )
    board.timeseries(
        Panel(
            "Memory saved and net profit",
            "Memory saved (pages_sharing + ksm_zero_pages) and the kernel's net profit after "
            "metadata (general_profit, since 6.4), against the KsmNegativeProfit "
            "threshold. "
            "Good: both high and steady; profit below zero is a loss. While KSM is stopped "
            "both keep their last values, as do the per-process counters. "
            + needs_threshold("general_profit_bytes"),
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
            "unshared (unique pages checked again and again), volatile (changing too fast, or "
            "skipped by smart_scan, which takes them out of the unstable tree) "
            "and zero pages merged with the kernel zero page "
            "(ksm_zero_pages, since 6.6). "
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
            "Mappings and unshared pages per KSM page",
            "Mappings per shared page, higher is better. Unshared pages per sharing page: "
            "pages checked in vain per merged page (wasted effort); above "
            f"{thresholds.UNSHARED_RATIO:g} KSM mostly scans memory that never merges "
            "(KsmHighUnsharedRatio); +Inf, drawn at the top, when pages are unshared and none "
            "shares. " + needs_threshold("unshared_pages_per_sharing_page"),
            RATIO_UNIT,
            [
                Query(f"ksm_mappings_per_shared_page{selector()}", "mappings per KSM page"),
                Query(
                    f"ksm_unshared_pages_per_sharing_page{selector()}",
                    "unshared per sharing page",
                ),
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
            "Share of one CPU the ksmd kernel thread used, against this host's alert "
            "threshold. Good: a few percent. Above "
            f"{thresholds.SCANNING_CPU_RATIO:.0%} scanning must show savings "
            f"(KsmScanningWithoutSavings); above {thresholds.KSMD_CPU_RATIO:.0%} it is "
            "excessive (KsmdExcessiveCpu), or above advisor_max_cpu where the kernel's "
            "scan-time advisor runs. " + needs_threshold("ksmd_cpu_ratio"),
            "percentunit",
            [Query(ksmd_cpu(), "ksmd"), threshold_query("ksmd_cpu_ratio")],
            width=8,
            height=8,
            steps=CPU_STEPS,
        )
    )
    board.timeseries(
        Panel(
            "Scan rate",
            "Memory ksmd scans per second (pages_scanned, since 6.6), "
            "memory smart scan skipped (pages_skipped, since 6.7), and the ceiling the "
            "settings allow (pages_to_scan per sleep). Scanning far below the ceiling means "
            "ksmd is CPU-bound.",
            "binBps",
            [
                Query(
                    f"rate(ksm_pages_scanned_total{selector()}[{RATE_WINDOW}])"
                    " * on(job, instance) group_left ksm_page_size_bytes",
                    "scanned",
                ),
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
            "Time KSM ran during the last complete pass over all mergeable memory (stops "
            "do not count), ksmd CPU spent per pass, and the mean time between passes over "
            "the last hour. Shorter passes find new duplicates sooner; above "
            f"{thresholds.FULL_SCAN_SECONDS:g} s merging lags behind the guests' memory "
            "(KsmFullScanTooSlow); a pass that never ends is KsmFullScanStalled. "
            + needs_threshold("full_scan_duration_seconds"),
            "s",
            [
                Query(f"ksm_full_scan_duration_seconds{selector()}", "wall time"),
                Query(f"ksm_full_scan_ksmd_cpu_seconds{selector()}", "ksmd CPU"),
                Query(
                    f"1 / (rate(ksm_full_scans_total{selector()}[1h]) > 0)",
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
            "Share of one CPU ksmd spends for every GiB it saves. Lower is better; rising "
            "while savings stay flat means more effort for the same gain. Empty while ksmd "
            "uses no CPU or nothing is saved.",
            "percentunit",
            [
                Query(
                    f"{ksmd_cpu()} / (ksm_memory_saved_bytes{selector()} > 0) * {GIB}",
                    "CPU per saved GiB",
                )
            ],
            width=24,
            height=8,
        )
    )


def _tuning(board: DashboardWriter) -> None:
    board.row("Tuning advice")
    needs = (
        f" The exporter gives advice once it has observed {TUNING_SCANS}; until then this "
        "panel stays empty (docs/tuning.md)."
    )
    board.stat(
        Panel(
            "Tuning state",
            "What the exporter's model says about this host (ksm_tuning_state): backlog "
            "(savings still grow by more than 1% over 3 full scans: scan as fast as the CPU "
            "budget allows), steady (scan slower, at the steady target), unprofitable (KSM "
            "costs more than it saves: stop it), idle (nothing registered), stopped." + needs,
            "none",
            [Query(f"ksm_tuning_state{selector()} == 1", "{{state}}", instant=True)],
            width=4,
            height=8,
            mappings={"1": ("current", NEUTRAL)},
            steps=((None, NEUTRAL),),
            show_names=True,
        )
    )
    board.timeseries(
        Panel(
            "Recommended and current pages_to_scan",
            "pages_to_scan as set and as the exporter recommends for the CPU budget "
            "(--tuning.cpu-budget) and the state. More than twice or under half the setting "
            "for 6 hours is KsmTuningAdvice; where the kernel's scan-time advisor runs it "
            "moves pages_to_scan itself." + needs,
            "short",
            [
                Query(f"ksm_pages_to_scan{selector()}", "current"),
                Query(f"ksm_tuning_recommended_pages_to_scan{selector()}", "recommended"),
            ],
            width=20,
            height=8,
            steps=((None, NEUTRAL),),
        )
    )
    board.timeseries(
        Panel(
            "ksmd CPU: predicted and measured",
            "The share of one CPU the model predicts for ksmd at the current and at the "
            "recommended settings, against what ksmd uses. Current and measured should "
            "agree once the model has settled: where they do not, the advice is not yet to "
            "be trusted." + needs,
            "percentunit",
            [
                Query(
                    "ksm_tuning_predicted_ksmd_cpu_ratio" + selector('settings="current"'),
                    "predicted, current settings",
                ),
                Query(
                    "ksm_tuning_predicted_ksmd_cpu_ratio" + selector('settings="recommended"'),
                    "predicted, recommended settings",
                ),
                Query(ksmd_cpu(), "measured"),
            ],
            width=12,
            height=8,
            steps=CPU_STEPS,
        )
    )
    board.timeseries(
        Panel(
            "Full-scan time: predicted and measured",
            "How long a full scan takes as the model predicts it at the current and at the "
            "recommended settings (the recommended one is also the advisor_target_scan_time "
            "to set where the kernel's advisor runs), against the last measured full scan." + needs,
            "s",
            [
                Query(
                    "ksm_tuning_predicted_full_scan_seconds" + selector('settings="current"'),
                    "predicted, current settings",
                ),
                Query(
                    "ksm_tuning_predicted_full_scan_seconds" + selector('settings="recommended"'),
                    "predicted, recommended settings",
                ),
                Query(f"ksm_full_scan_duration_seconds{selector()}", "measured"),
            ],
            width=12,
            height=8,
            steps=((None, NEUTRAL),),
        )
    )


def _processes(board: DashboardWriter) -> None:
    board.row("Processes, VMs and cgroups")
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
            width=24,
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
    board.table(
        Panel(
            "Processes merging little, and why",
            "Each registered process with series of its own whose merged pages are under 1 in "
            "20 of the pages ksmd tracks of it (the value), with the first cause that holds "
            "(ksm_process_merging_little_info's reason; ksm-exporter status --why PID shows "
            "the checks and their evidence). Empty is good; not_reached, "
            "memory_ksm_not_applied and huge_pages are for a setting to change "
            "(KsmProcessMergingLittle), unique and volatile are the workload's content.",
            "short",
            [
                Query(
                    f"ksm_process_merging_little_info{selector()}"
                    " * on (cluster, job, instance, pid) group_left ()"
                    f" ksm_process_rmap_items{selector()}",
                    "pages tracked",
                    instant=True,
                )
            ],
            width=24,
            height=8,
            steps=((None, NEUTRAL),),
        )
    )
    guest_ram = "guest RAM merged"
    guest = 'vm!=""'
    # A KubeVirt VM's name is unique only in its namespace: two VMIs of one name on this
    # node stay two rows.
    vms = "namespace, vm"
    for label, group, title, who, extra in (
        (
            "vm",
            vms,
            "VMs by merged memory and profit",
            "QEMU guests (by -name; KubeVirt's by namespace and VMI name), with the share of "
            "each guest's RAM (its -m, ksm_process_guest_memory_bytes) that KSM merges, as the "
            "recording rule process:ksm_guest_memory_merged:ratio computes it",
            [
                Query(
                    f"sum by ({vms}) ({in_bytes('ksm_process_merging_pages', guest)})"
                    f" / sum by ({vms}) (ksm_process_guest_memory_bytes{selector(guest)})",
                    guest_ram,
                    instant=True,
                )
            ],
        ),
        ("cgroup", "cgroup", "Cgroups by merged memory and profit", "Cgroups (v2 path)", []),
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
                        f"topk({TOP}, sum by ({group}) "
                        f"({in_bytes('ksm_process_merging_pages', matcher)}))",
                        "merged",
                        instant=True,
                    ),
                    Query(
                        f"sum by ({group}) (ksm_process_profit_bytes{selector(matcher)})",
                        "profit",
                        instant=True,
                    ),
                    *extra,
                ],
                width=12,
                height=8,
                column_units={guest_ram: "percentunit"} if extra else {},
            )
        )
    selected = f"process:ksm_sensitive_workload:selected{selector()}"
    board.stat(
        Panel(
            "Sensitive workloads in KSM",
            "How many processes the sensitive-workload selection (mixin sensitiveWorkloads, "
            "recorded as process:ksm_sensitive_workload:selected in ksm-rules.yml) finds "
            "registered with KSM, and how many of them have merged pages. Good: 0 and 0; "
            "merged pages are a critical alert after 5 minutes (KsmSensitiveWorkloadMerging), "
            "registered ones a warning (KsmSensitiveWorkloadRegistered). Needs the recording "
            "rules of ksm-rules.yml (it reads ksm:ksmd_cpu_ratio:threshold to know they are "
            "loaded): without them, or without data from the host, it shows no value, never 0.",
            "short",
            [
                Query(
                    f"count({in_bytes('ksm_process_merging_pages')} > 0"
                    f" and on(cluster, job, instance, pid) {selected})"
                    f" or on() {zero_per_host('')}",
                    "merging",
                    instant=True,
                ),
                Query(
                    f"count({selected}) or on() {zero_per_host('')}",
                    "registered",
                    instant=True,
                ),
            ],
            width=6,
            height=8,
            steps=((None, GOOD), (1, BAD)),
            no_value="rules not loaded",
            show_names=True,
        )
    )
    board.table(
        Panel(
            "Sensitive workloads registered with KSM",
            "The processes counted in Sensitive workloads in KSM, with the memory they have "
            "merged: each row with merged memory is KsmSensitiveWorkloadMerging, since merged "
            "pages let other workloads time their memory. Needs the recording rule "
            "process:ksm_sensitive_workload:selected of ksm-rules.yml.",
            "bytes",
            [
                Query(
                    f"{in_bytes('ksm_process_merging_pages')} and on(cluster, job, instance, pid) "
                    f"{selected}",
                    "merged",
                    instant=True,
                )
            ],
            width=18,
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

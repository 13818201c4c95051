"""Many hosts at once: what the fleet saves, where KSM costs or fails, what is firing."""

from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards import thresholds
from dashboards.common import (
    BAD,
    CPU_STEPS,
    GOOD,
    KSMD_CPU,
    RUN_STATES,
    WARN,
    DashboardWriter,
    Panel,
    Query,
    run_state_expr,
    selector,
)

UID = "ksm-exporter-fleet"
TOP = 10


def build() -> Dashboard:
    board = DashboardWriter(
        UID,
        "KSM / Fleet",
        "Kernel Samepage Merging across many hosts: savings, cost, and hosts that need a look.",
        ["ksm", "ksm-exporter", "memory"],
    )
    board.variables(instance_multi=True)
    _totals(board)
    _top_hosts(board)
    _hosts_to_look_at(board)
    return board.builder.build()


def _totals(board: DashboardWriter) -> None:
    board.row("Fleet totals")
    board.stat(
        Panel(
            "Memory saved across the fleet",
            "Sum of memory KSM saves on every selected host. Good: steady or growing with "
            "the number of similar guests.",
            "bytes",
            [Query(f"sum(ksm_memory_saved_bytes{selector()})", instant=True)],
        )
    )
    board.stat(
        Panel(
            "Net profit across the fleet",
            "Sum of memory saved minus KSM metadata on hosts whose kernel reports it "
            "(general_profit, kernel 6.4+). Red when the fleet loses memory to KSM.",
            "bytes",
            [Query(f"sum(ksm_general_profit_bytes{selector()})", instant=True)],
            steps=((None, BAD), (thresholds.PROFIT_BYTES, GOOD)),
        )
    )
    board.stat(
        Panel(
            "Hosts with KSM running",
            "Selected hosts where ksmd runs (run = 1), out of the hosts reporting.",
            "short",
            [
                Query(f"count(ksm_run{selector()} % 4 == 1)", "running", instant=True),
                Query(f"count(ksm_available{selector()})", "reporting", instant=True),
            ],
            no_value="0",
        )
    )
    board.stat(
        Panel(
            "ksmd CPU across the fleet",
            "ksmd CPU summed over the selected hosts, in CPUs (100% = one whole CPU). Good: "
            "small next to what the fleet saves.",
            "percentunit",
            [Query(f"sum({KSMD_CPU}{selector()})", instant=True)],
        )
    )
    board.timeseries(
        Panel(
            "Memory saved by host",
            f"Memory KSM saves on the {TOP} hosts that save most. A sudden drop on one host "
            "means its guests diverged or stopped, or KSM was switched off there.",
            "bytes",
            [Query(f"topk({TOP}, ksm_memory_saved_bytes{selector()})", "{{instance}}")],
            width=12,
            height=8,
        )
    )
    board.timeseries(
        Panel(
            "ksmd CPU by host",
            f"Share of one CPU ksmd used over 5 minutes on the {TOP} busiest hosts. Above "
            f"{thresholds.SCANNING_CPU_RATIO:.0%} scanning must show savings; above "
            f"{thresholds.KSMD_CPU_RATIO:.0%} it is excessive (KsmdExcessiveCpu).",
            "percentunit",
            [Query(f"topk({TOP}, {KSMD_CPU}{selector()})", "{{instance}}")],
            width=12,
            height=8,
            steps=CPU_STEPS,
        )
    )


def _top_hosts(board: DashboardWriter) -> None:
    board.row("Top hosts")
    board.table(
        Panel(
            "Top hosts by memory saved",
            f"The {TOP} hosts where KSM saves most memory, with the share of their RAM. "
            "These hosts justify running KSM.",
            "bytes",
            [
                Query(f"topk({TOP}, ksm_memory_saved_bytes{selector()})", "saved", instant=True),
                Query(
                    f"ksm_memory_saved_ratio{selector()} and on(job, instance) "
                    f"topk({TOP}, ksm_memory_saved_bytes{selector()})",
                    "share of RAM",
                    instant=True,
                ),
            ],
            width=12,
            height=8,
            column_units={"share of RAM": "percentunit"},
        )
    )
    board.table(
        Panel(
            "Top hosts by ksmd CPU",
            f"The {TOP} hosts where ksmd used most CPU over 5 minutes, as a share of one CPU. "
            f"Above {thresholds.KSMD_CPU_RATIO:.0%} (KsmdExcessiveCpu) consider a longer sleep "
            "or fewer pages per batch.",
            "percentunit",
            [Query(f"topk({TOP}, {KSMD_CPU}{selector()})", "ksmd CPU", instant=True)],
            width=12,
            height=8,
            steps=CPU_STEPS,
        )
    )


def _hosts_to_look_at(board: DashboardWriter) -> None:
    board.row("Hosts that need a look")
    board.table(
        Panel(
            "KSM on but unprofitable",
            "Hosts where ksmd runs but KSM's net profit (general_profit, kernel 6.4+) is "
            "below the host's KsmNegativeProfit threshold (default "
            f"{thresholds.PROFIT_BYTES:g} bytes): the metadata costs more memory than merging "
            "saves. Good: empty. Fix by registering only memory that duplicates, or stop KSM "
            "there.",
            "bytes",
            [
                Query(
                    f"ksm_general_profit_bytes{selector()}"
                    " < on(instance) group_left() instance:ksm_general_profit_bytes:threshold"
                    f" and on(job, instance) ksm_run{selector()} % 4 == 1",
                    "net profit",
                    instant=True,
                )
            ],
            width=12,
            height=8,
            steps=((None, BAD), (thresholds.PROFIT_BYTES, GOOD)),
        )
    )
    board.table(
        Panel(
            "Hosts with KSM off",
            "Hosts where ksmd is stopped, unmerging, or the kernel offers no KSM at all. "
            "Good: only hosts where KSM is off on purpose.",
            "none",
            [Query(f"({run_state_expr()}) != 1", "state", instant=True)],
            width=12,
            height=8,
            mappings=RUN_STATES,
        ),
        sort_desc=False,
    )
    board.table(
        Panel(
            "Firing KSM alerts",
            "KSM alerts firing now, from Prometheus' ALERTS series. Good: empty. Each row "
            "names the alert, its severity and the host.",
            "none",
            [
                Query(
                    "ALERTS" + selector('alertname=~"Ksm.*"', 'alertstate="firing"'),
                    "firing",
                    instant=True,
                )
            ],
            width=24,
            height=8,
            mappings={"1": ("firing", WARN)},
        )
    )

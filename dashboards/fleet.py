"""Many hosts at once: what the fleet saves, where KSM costs or fails, what is firing."""

from __future__ import annotations

from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards import thresholds
from dashboards.common import (
    BAD,
    CPU_STEPS,
    FLEET_UID,
    GOOD,
    HOST_UID,
    NEUTRAL,
    RUN_STATES,
    DashboardWriter,
    Panel,
    Query,
    ksm_on,
    ksmd_cpu,
    per_host,
    run_state_expr,
    selector,
    zero_per_host,
)

UID = FLEET_UID
TOP = 10


def build() -> Dashboard:
    board = DashboardWriter(
        UID,
        "KSM / Fleet",
        "Kernel Samepage Merging across many hosts: savings, cost, and hosts that need a look.",
        ["ksm", "ksm-exporter", "memory"],
    )
    board.variables(instance_multi=True)
    board.link_to(HOST_UID, "KSM / Host")
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
            "(general_profit, since 6.4). Red when the fleet loses memory to KSM.",
            "bytes",
            [Query(f"sum(ksm_general_profit_bytes{selector()})", instant=True)],
            steps=((None, BAD), (thresholds.PROFIT_BYTES, GOOD)),
        )
    )
    board.stat(
        Panel(
            "Hosts with KSM running",
            "Selected hosts where KSM is on (run 1, or 5 while memory goes offline), out of "
            "the hosts reporting. Running counts 0 when none runs and hosts report; no value "
            "means no host reports at all.",
            "short",
            [
                Query(
                    f"count({ksm_on()}) or on() (0 * count(ksm_available{selector()}))",
                    "running",
                    instant=True,
                ),
                Query(f"count(ksm_available{selector()})", "reporting", instant=True),
            ],
            steps=((None, NEUTRAL),),
            show_names=True,
        )
    )
    board.stat(
        Panel(
            "ksmd CPU across the fleet",
            "ksmd CPU summed over the selected hosts, in CPUs (100% = one whole CPU). Good: "
            "small next to what the fleet saves.",
            "percentunit",
            [Query(f"sum({ksmd_cpu()})", instant=True)],
        )
    )
    board.timeseries(
        Panel(
            "Memory saved by host",
            f"Memory KSM saves on the {TOP} hosts that save most. A sudden drop on one host "
            "means its guests diverged or stopped, or KSM was switched to unmerge there. "
            "Click a line to open that host.",
            "bytes",
            [Query(f"topk({TOP}, ksm_memory_saved_bytes{selector()})", "{{instance}}")],
            width=12,
            height=8,
            host_links=("instance",),
        )
    )
    board.timeseries(
        Panel(
            "ksmd CPU by host",
            f"Share of one CPU ksmd used on the {TOP} busiest hosts. Above "
            f"{thresholds.SCANNING_CPU_RATIO:.0%} scanning must show savings; above "
            f"{thresholds.KSMD_CPU_RATIO:.0%} it is excessive (KsmdExcessiveCpu). Click a line "
            "to open that host.",
            "percentunit",
            [Query(f"topk({TOP}, {ksmd_cpu()})", "{{instance}}")],
            width=12,
            height=8,
            host_links=("instance",),
            steps=CPU_STEPS,
        )
    )


def _top_hosts(board: DashboardWriter) -> None:
    board.row("Top hosts")
    board.table(
        Panel(
            "Top hosts by memory saved",
            f"The {TOP} hosts where KSM saves most memory, with the share of their RAM. "
            "These hosts justify running KSM. Click a host to open it.",
            "bytes",
            [
                Query(
                    per_host(f"topk({TOP}, ksm_memory_saved_bytes{selector()})"),
                    "saved",
                    instant=True,
                ),
                Query(
                    per_host(
                        f"ksm_memory_saved_ratio{selector()} and on(cluster, job, instance) "
                        f"topk({TOP}, ksm_memory_saved_bytes{selector()})"
                    ),
                    "share of RAM",
                    instant=True,
                ),
            ],
            width=12,
            height=8,
            column_units={"share of RAM": "percentunit"},
            host_links=("instance",),
        )
    )
    board.table(
        Panel(
            "Top hosts by ksmd CPU",
            f"The {TOP} hosts where ksmd used most CPU, as a share of one CPU. Above "
            f"{thresholds.KSMD_CPU_RATIO:.0%} (KsmdExcessiveCpu) consider a longer sleep or "
            "fewer pages per batch. Click a host to open it.",
            "percentunit",
            [Query(f"topk({TOP}, {ksmd_cpu()})", "ksmd CPU", instant=True)],
            width=12,
            height=8,
            steps=CPU_STEPS,
            host_links=("instance",),
        )
    )


def _hosts_to_look_at(board: DashboardWriter) -> None:
    board.row("Hosts that need a look")
    board.table(
        Panel(
            "Net profit by host, KSM on",
            "Every host where KSM is on, lowest net profit first (general_profit, since 6.4): "
            "memory saved minus the metadata KSM spends. Red below the host's "
            "KsmNegativeProfit threshold (the recorded instance:ksm_general_profit_bytes:"
            f"threshold, else {thresholds.PROFIT_BYTES:g} bytes when the rules are not "
            "loaded): there KSM costs more memory than it saves; register only memory that "
            "duplicates, or stop KSM. Click a host to open it.",
            "bytes",
            [
                Query(
                    f"bottomk({TOP}, ksm_general_profit_bytes{selector()}"
                    f" and on(cluster, job, instance) ({ksm_on()}))",
                    "net profit",
                    instant=True,
                )
            ],
            width=12,
            height=8,
            steps=((None, BAD), (thresholds.PROFIT_BYTES, GOOD)),
            host_links=("instance",),
        ),
        sort_desc=False,
    )
    board.table(
        Panel(
            "KSM state by host",
            "Every reporting host with what ksmd does there, hosts where KSM is not running "
            "first: stopped, unmerging, paused while memory goes offline, or no KSM in the "
            "kernel at all. Only hosts where KSM is off on purpose should be off. Click a "
            "host to open it.",
            "none",
            [Query(run_state_expr(), "state", instant=True)],
            width=12,
            height=8,
            mappings=RUN_STATES,
            host_links=("instance",),
        ),
        sort_desc=False,
    )
    board.table(
        Panel(
            "KSM alerts firing by host",
            "How many KSM alerts fire on each reporting host, most first, from Prometheus' "
            "ALERTS series; 0 is a host with none. Needs the rule files loaded: without "
            "them (no recorded ksm:ksmd_cpu_ratio:threshold) the table stays empty "
            "rather than show 0. The Alerting page names each alert. Click a host to open it.",
            "short",
            [
                Query(
                    "count by (instance) (ALERTS"
                    + selector('alertname=~"Ksm.*"', 'alertstate="firing"')
                    + f") or on(instance) {zero_per_host('instance')}",
                    "firing",
                    instant=True,
                )
            ],
            width=24,
            height=8,
            steps=((None, GOOD), (1, BAD)),
            host_links=("instance",),
        )
    )

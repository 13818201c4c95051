"""Every panel query of both dashboards returns data from a real Prometheus.

Two Prometheus servers scrape three exporters every second: one on this machine's real KSM
while a plain process and a QEMU-like guest merge pages, and two on fixture trees standing
for fleet hosts where KSM runs at a loss and where it is stopped. One loads the shipped
rule files, the other none: there every query returns data too, or its panel's description
names each recording rule the query reads. Each query runs with the dashboard variables
filled in as Grafana would fill them.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest

from harness.dashboards import (
    DASHBOARD_FILES,
    NEEDS_KERNEL_FILE,
    RECORDING_RULE,
    TUNING_METRICS,
    PanelQuery,
    load,
    panels,
    queries,
)
from harness.eventually import eventually
from harness.exporter_process import running_exporter
from harness.paths import FIXTURES
from harness.prometheus_server import (
    PrometheusError,
    RunningPrometheus,
    running_prometheus,
    scrape_config,
)
from harness.real_ksm import KSM, ksm_control, merging_child
from harness.rule_files import RULE_FILES
from harness.tools import require
from harness.why_workload import why_child

pytestmark = pytest.mark.realksm

JOB = "ksm-exporter"
SCRAPE_INTERVAL = "1s"
# What Grafana makes of $__rate_interval with a 1 s scrape interval: four scrapes.
RATE_INTERVAL = "4s"
# Named so that the shipped sensitive-workload selector (vm=~"sensitive-.+") picks it.
GUEST = "sensitive-dashboard-guest"
GUEST_PAGES = 2048
# The guest's -m (MiB, QEMU's unit without suffix): its GUEST_PAGES merged are a quarter of it
# on 4 KiB pages.
GUEST_MEMORY_MIB = 32
RANGE_SECONDS = 15
# Time for the stack to gather samples, ksmd to finish full scans and the sampler behind the
# cost metrics to fill its window: every query gets this long to start returning data.
DATA_DEADLINE = 40.0


def fixture_flags(name: str) -> tuple[str, ...]:
    return (f"--path.sysfs={FIXTURES / name / 'sys'}", f"--path.procfs={FIXTURES / name / 'proc'}")


@dataclass
class Stack:
    prometheus: RunningPrometheus
    # The same scrapes without any rule file.
    bare: RunningPrometheus
    host: str
    unprofitable: str
    stopped: str
    # Until when a query may still lack data because the stack is warming up.
    data_deadline: float


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    require("prometheus", "prometheus")
    with contextlib.ExitStack() as resources:
        ksm = resources.enter_context(ksm_control())
        ksm.set(pages_to_scan=1000, sleep_millisecs=10, run=1)
        plain = resources.enter_context(merging_child(16 << 20))
        guest = resources.enter_context(
            merging_child(
                GUEST_PAGES * mmap.PAGESIZE,
                argv0="qemu-system-x86_64",
                extra_args=("-name", f"guest={GUEST}", "-m", str(GUEST_MEMORY_MIB)),
            )
        )
        # Unique pages, registered: a process that merges little, for the panel that says why.
        resources.enter_context(why_child(4 << 20, "unique"))
        plain.wait_merged(2000)
        guest.wait_merged(GUEST_PAGES)
        real = resources.enter_context(running_exporter())
        unprofitable = resources.enter_context(running_exporter(*fixture_flags("unprofitable")))
        stopped = resources.enter_context(running_exporter(*fixture_flags("stopped")))
        targets = (real.address, unprofitable.address, stopped.address)
        scrapes = [scrape_config(JOB, *targets, interval=SCRAPE_INTERVAL)]
        prometheus = resources.enter_context(
            running_prometheus(scrape_configs=scrapes, rule_files=RULE_FILES)
        )
        bare = resources.enter_context(running_prometheus(scrape_configs=scrapes))
        for server in (prometheus, bare):
            eventually(partial(scraped_all, server), DATA_DEADLINE, 0.5, "the first scrapes")
        yield Stack(
            prometheus,
            bare,
            real.address,
            unprofitable.address,
            stopped.address,
            time.monotonic() + DATA_DEADLINE,
        )


def scraped_all(server: RunningPrometheus) -> bool:
    """All three exporters scraped, and the guest's merged pages among the samples."""
    guest = server.query(f'ksm_process_merging_pages{{vm="{GUEST}"}}')
    return len(server.query("ksm_available")) == 3 and bool(guest)


def variables(dashboard: str, host: str) -> dict[str, str]:
    common = {"cluster": ".*", "job": JOB, "__rate_interval": RATE_INTERVAL}
    if dashboard == "ksm-host.json":
        return {**common, "instance": host}
    return {**common, "job": ".*", "instance": ".*"}


def expect_data(query: PanelQuery, rules: bool, advice: bool = False) -> bool:
    if not rules and RECORDING_RULE.search(query.expr):
        # Documented in its panel (test above).
        return False
    if query.metrics() & TUNING_METRICS:
        # The advice needs full scans the exporter may not have seen yet (documented):
        # once it gives advice for this host, every tuning panel must show it.
        return advice
    kernel_file = NEEDS_KERNEL_FILE.get(query.id)
    return kernel_file is None or os.path.exists(os.path.join(KSM, kernel_file))


def run_query(prometheus: RunningPrometheus, query: PanelQuery, expr: str) -> list[Any]:
    if query.instant:
        return list(prometheus.query(expr))
    now = time.time()
    return list(prometheus.query_range(expr, now - RANGE_SECONDS, now))


def problem(
    prometheus: RunningPrometheus, query: PanelQuery, expr: str, rules: bool, host: str
) -> str:
    """Empty when the query behaves as the dashboard promises, else what is wrong."""
    try:
        advice = bool(prometheus.query(f'ksm_tuning_state{{instance="{host}"}}'))
        result = run_query(prometheus, query, expr)
    except (PrometheusError, OSError) as err:
        return f"{query.id}: {expr} failed: {err}"
    if expect_data(query, rules, advice) and not result:
        return f"{query.id}: {expr} returned no data"
    if not expect_data(query, rules, advice) and query.id in NEEDS_KERNEL_FILE and result:
        return f"{query.id}: {expr} returned data although the kernel lacks the file"
    return ""


ALL_QUERIES = [query for dashboard in DASHBOARD_FILES for query in queries(dashboard)]


@pytest.mark.parametrize("rules", [True, False], ids=["rules-loaded", "no-rules"])
@pytest.mark.parametrize("query", ALL_QUERIES, ids=[query.id for query in ALL_QUERIES])
def test_panel_query_returns_data(stack: Stack, query: PanelQuery, rules: bool) -> None:
    expr = query.filled(variables(query.dashboard, stack.host))
    prometheus = stack.prometheus if rules else stack.bare

    def behaves() -> bool:
        found = problem(prometheus, query, expr, rules, stack.host)
        assert not found, found
        return True

    # Until the deadline the stack may still be warming up; after it, one try.
    eventually(behaves, max(stack.data_deadline - time.monotonic(), 0.0), 0.5, query.id)


@pytest.mark.parametrize("dashboard", DASHBOARD_FILES)
def test_variables_list_the_scraped_hosts(stack: Stack, dashboard: str) -> None:
    templating = load(dashboard).templating
    assert templating is not None
    by_name = {variable.name: variable for variable in templating.list_val or []}
    assert by_name["cluster"].query == "label_values(ksm_available, cluster)"
    assert by_name["job"].query == 'label_values(ksm_available{cluster=~"$cluster"}, job)'
    assert by_name["instance"].query == (
        'label_values(ksm_available{cluster=~"$cluster",job=~"$job"}, instance)'
    )

    def values(label: str, selector: str) -> list[str]:
        found = stack.prometheus.api(f"label/{label}/values", **{"match[]": selector})
        assert isinstance(found, list)
        return found

    # One cluster without a cluster label: "All" (.*) matches its series.
    assert values("cluster", "ksm_available") == []
    assert values("job", 'ksm_available{cluster=~".*"}') == [JOB]
    instances = values("instance", f'ksm_available{{cluster=~".*",job=~"{JOB}"}}')
    assert stack.host in instances
    assert len(instances) == 3


def test_fleet_panels_single_out_the_right_hosts(stack: Stack) -> None:
    by_id = {query.id: query for query in queries("ksm-fleet.json")}
    fills = variables("ksm-fleet.json", stack.host)

    def hosts(panel: str) -> dict[str, float]:
        result = stack.prometheus.query(by_id[f"ksm-fleet.json:{panel}:A"].filled(fills))
        return {str(s["metric"]["instance"]): float(s["value"][1]) for s in result}

    # KSM is on on this host and on the unprofitable one, which loses 15 MiB; not the stopped.
    profit = hosts("Net profit by host, KSM on")
    assert set(profit) == {stack.host, stack.unprofitable}
    assert profit[stack.unprofitable] == -15760640.0
    assert hosts("KSM state by host") == {
        stack.host: 1.0,
        stack.unprofitable: 1.0,
        stack.stopped: 0.0,
    }


def test_sensitive_workload_table_names_the_guest(stack: Stack) -> None:
    (query,) = [
        q for q in queries("ksm-host.json") if q.panel == "Sensitive workloads registered with KSM"
    ]
    page = stack.prometheus.value(f'ksm_page_size_bytes{{instance="{stack.host}"}}')
    result = stack.prometheus.query(query.filled(variables("ksm-host.json", stack.host)))
    # Other sensitive guests on this shared machine may show up too.
    rows = [(s["metric"]["vm"], float(s["value"][1])) for s in result]
    assert (GUEST, GUEST_PAGES * page) in rows


def test_vm_table_names_the_guest_and_what_it_merged(stack: Stack) -> None:
    by_id = {query.id: query for query in queries("ksm-host.json")}
    fills = variables("ksm-host.json", stack.host)
    merged = by_id["ksm-host.json:VMs by merged memory and profit:A"].filled(fills)
    profit = by_id["ksm-host.json:VMs by merged memory and profit:B"].filled(fills)
    page = stack.prometheus.value(f'ksm_page_size_bytes{{instance="{stack.host}"}}')
    guest = frozenset({("vm", GUEST)})
    assert stack.prometheus.values(merged)[guest] == GUEST_PAGES * page
    assert stack.prometheus.values(profit)[guest] > 0
    share = by_id["ksm-host.json:VMs by merged memory and profit:C"].filled(fills)
    assert stack.prometheus.values(share)[guest] == GUEST_PAGES * page / (GUEST_MEMORY_MIB << 20)


def test_alert_panel_counts_ksm_alerts_of_every_selected_host(stack: Stack) -> None:
    """Firing takes the alerts' `for:`; pending ones show the panel's query counts them."""
    (query,) = [q for q in queries("ksm-fleet.json") if q.panel == "KSM alerts firing by host"]
    pending = query.filled(variables("ksm-fleet.json", stack.host)).replace(
        'alertstate="firing"', 'alertstate="pending"'
    )
    names = 'ALERTS{alertname=~"Ksm.*", alertstate="pending"}'
    expected = {
        ("KsmNegativeProfit", stack.unprofitable),
        ("KsmHighUnsharedRatio", stack.unprofitable),
        ("KsmSensitiveWorkloadMerging", stack.host),
    }

    def alerts() -> set[tuple[str, str]]:
        found = {
            (s["metric"]["alertname"], s["metric"].get("instance", ""))
            for s in stack.prometheus.query(names)
        }
        assert expected <= found, found
        return found

    eventually(alerts, 30, 0.5, "the KSM alerts pending")
    counts = {
        str(s["metric"]["instance"]): float(s["value"][1]) for s in stack.prometheus.query(pending)
    }
    # Every host has a row; the two with pending alerts count them.
    assert set(counts) == {stack.host, stack.unprofitable, stack.stopped}
    assert counts[stack.unprofitable] >= 1
    assert counts[stack.host] >= 1


# Enough for the full scans the advice needs at the stack's fast pace (a full scan of the
# children's pages takes well under a second here).
ADVICE_DEADLINE = 60.0


def test_the_tuning_row_shows_the_advice_for_this_host(stack: Stack) -> None:
    eventually(
        lambda: stack.prometheus.query(f'ksm_tuning_state{{instance="{stack.host}"}} == 1'),
        ADVICE_DEADLINE,
        0.5,
        "the exporter's tuning advice",
    )
    tuning = [q for q in queries("ksm-host.json") if q.metrics() & TUNING_METRICS]
    assert {q.panel for q in tuning} == {
        "Tuning state",
        "Recommended and current pages_to_scan",
        "ksmd CPU: predicted and measured",
        "Full-scan time: predicted and measured",
    }
    fills = variables("ksm-host.json", stack.host)
    for query in tuning:
        # Scraped once more after the advice appeared.
        eventually(
            partial(run_query, stack.prometheus, query, query.filled(fills)), 5, 0.5, query.id
        )


MERGED_TABLES = [
    (name, str(panel.title))
    for name in DASHBOARD_FILES
    for panel in panels(load(name))
    if panel.type_val == "table" and len(panel.targets or []) > 1
]


@pytest.mark.parametrize("table", MERGED_TABLES, ids=[f"{n}:{t}" for n, t in MERGED_TABLES])
def test_a_tables_queries_merge_into_one_row_per_subject(
    stack: Stack, table: tuple[str, str]
) -> None:
    """Grafana's merge transformation joins rows whose label columns agree: every query of
    the table must return the same label names, without __name__."""
    name, title = table
    fills = variables(name, stack.host)
    label_sets = set()
    for query in queries(name):
        if query.panel == title:
            for series in stack.prometheus.query(query.filled(fills)):
                label_sets.add(frozenset(series["metric"]))
    assert len(label_sets) == 1, label_sets
    assert "__name__" not in next(iter(label_sets))

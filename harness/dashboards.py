"""The committed dashboards as Grafana models, and their queries with variables filled in."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard, Panel
from grafana_foundation_sdk.models.prometheus import Dataquery

from harness.paths import REPO
from harness.rule_files import rules

DASHBOARD_FILES = ("ksm-host.json", "ksm-fleet.json")
# Decode panel options and Prometheus queries into their typed models, not untyped bags.
register_default_plugins()

# Recording rules (level:metric:operations) first, so their inner ksm_ part is not taken alone.
METRIC_NAME = re.compile(r"\b([a-z_]+:[a-z0-9_:]+|ksm_[a-z0-9_]+|ALERTS)\b")


# The tuning-advice metrics, served once the exporter has observed enough full scans.
TUNING_METRICS = {
    "ksm_tuning_ksmd_cpu_seconds_per_page",
    "ksm_tuning_ksmd_cpu_seconds_per_batch",
    "ksm_tuning_pages_per_full_scan",
    "ksm_tuning_state",
    "ksm_tuning_recommended_full_scan_seconds",
    "ksm_tuning_recommended_pages_to_scan",
    "ksm_tuning_recommended_run",
    "ksm_tuning_predicted_ksmd_cpu_ratio",
    "ksm_tuning_predicted_full_scan_seconds",
}


def recorded_from() -> dict[str, set[str]]:
    """{recording rule name: the metrics and rules its expression reads}."""
    return {
        rule["record"]: set(METRIC_NAME.findall(rule["expr"]))
        for rule in rules()
        if "record" in rule
    }


def underlying_metrics(names: set[str]) -> set[str]:
    """The exporter's metrics behind these names, recording rules followed to their source."""
    recorded = recorded_from()
    found: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        if name in recorded:
            pending.extend(recorded[name] - found)
        elif name not in found:
            found.add(name)
    return found


def load(name: str) -> Dashboard:
    return Dashboard.from_json(json.loads((REPO / "dashboards" / name).read_text()))


def panels(dashboard: Dashboard) -> list[Panel]:
    return [panel for panel in dashboard.panels or [] if isinstance(panel, Panel)]


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref_id: str
    expr: str
    instant: bool

    @property
    def id(self) -> str:
        return f"{self.dashboard}:{self.panel}:{self.ref_id}"

    def metrics(self) -> set[str]:
        return set(METRIC_NAME.findall(self.expr))

    def filled(self, variables: dict[str, str]) -> str:
        """The expression as Grafana sends it, with `$name` replaced (longest names first)."""
        expr = self.expr
        for name in sorted(variables, key=len, reverse=True):
            expr = expr.replace("$" + name, variables[name])
        assert "$" not in expr, f"{self.id}: unsubstituted variable in {expr}"
        return expr


def queries(name: str) -> Iterator[PanelQuery]:
    for panel in panels(load(name)):
        for target in panel.targets or []:
            assert isinstance(target, Dataquery), f"{panel.title}: not a Prometheus query"
            yield PanelQuery(
                name,
                str(panel.title),
                str(target.ref_id),
                target.expr,
                bool(target.instant),
            )


# Queries that return data only where the host's kernel has the sysfs file named here.
NEEDS_KERNEL_FILE = {
    "ksm-host.json:KSM settings:C": "use_zero_pages",
    "ksm-host.json:KSM settings:D": "smart_scan",
    "ksm-host.json:KSM settings:E": "merge_across_nodes",
    "ksm-host.json:KSM settings:F": "advisor_mode",
    "ksm-host.json:KSM settings:G": "max_page_sharing",
    "ksm-host.json:KSM settings:H": "advisor_max_cpu",
    "ksm-host.json:KSM settings:I": "advisor_target_scan_time",
    "ksm-host.json:Net profit:A": "general_profit",
    "ksm-host.json:Memory saved and net profit:B": "general_profit",
    "ksm-host.json:Pages by state:E": "ksm_zero_pages",
    "ksm-host.json:Scan rate:A": "pages_scanned",
    "ksm-host.json:Scan rate:B": "pages_skipped",
}
# Recording rules: level:metric:operations.
RECORDING_RULE = re.compile(r"\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b")


def description(query: PanelQuery) -> str:
    (panel,) = [p for p in panels(load(query.dashboard)) if p.title == query.panel]
    return str(panel.description)

"""Pieces both dashboards share: the datasource, cluster, job and instance variables, links
between the dashboards, and panels that cannot be built without a query, a unit and a
description."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import prometheus as prometheus_builders
from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import prometheus as prometheus_models
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    DataSourceRef,
    DataTransformerConfig,
    DynamicConfigValue,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMapping,
    ValueMappingResult,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

from dashboards import thresholds

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
# The data source import asks for (the dashboards' __inputs); the datasource variable starts
# on it.
DATASOURCE_INPUT = "DS_PROMETHEUS"
# The label matchers every query carries. "All" expands to ".*", which also matches series
# without the label (single-cluster setups have no cluster label), unlike Grafana's default
# list of every value.
SELECTOR = 'cluster=~"$cluster",job=~"$job",instance=~"$instance"'
ALL = ".*"
RATE_WINDOW = "$__rate_interval"
GIB = 1 << 30
# "3.5" followed by a multiplication sign: how many times one thing is another.
RATIO_UNIT = "suffix:\N{MULTIPLICATION SIGN}"

GOOD, WARN, BAD, NEUTRAL = "green", "orange", "red", "blue"


def selector(*extra: str) -> str:
    return "{" + ",".join((SELECTOR, *extra)) + "}"


# Where the host dashboard lives, for links from the fleet (Grafana resolves /d/<uid>).
HOST_UID = "ksm-exporter-host"
FLEET_UID = "ksm-exporter-fleet"


def ksmd_cpu(*extra: str) -> str:
    """ksmd's share of one CPU from the raw counter: no recording rule needed."""
    return f"rate(ksm_ksmd_cpu_seconds_total{selector(*extra)}[{RATE_WINDOW}])"


# Recorded only where the rule files are loaded: a count may read 0 only then.
RULES_LOADED = "ksm:ksmd_cpu_ratio:threshold"


def zero_per_host(by: str) -> str:
    """0 for each selected host that reports, grouped `by` (empty: one 0 for all), and
    nothing at all while the rule files are not loaded."""
    grouped = f"max by ({by})" if by else "count"
    return f"(0 * {grouped} (ksm_available{selector()}) and on() count({RULES_LOADED}))"


def ksm_on(*extra: str) -> str:
    """KSM switched on: run 1, also while the memory-offline bit (4) reads 5."""
    return f"ksm_run{selector(*extra)} % 4 == 1"


# The labels of one host's series: what a table merges its queries' rows on.
HOST_LABELS = "cluster, job, instance"


def per_host(expr: str) -> str:
    """`expr` with only the host's labels (no __name__), so a table's queries merge into
    one row per host."""
    return f"max by ({HOST_LABELS}) ({expr})"


def in_bytes(pages_metric: str, *extra: str) -> str:
    """A page count as bytes, with the host's own page size."""
    return f"{pages_metric}{selector(*extra)} * on(job, instance) group_left ksm_page_size_bytes"


@dataclass(frozen=True)
class Query:
    """One PromQL query: `instant` for tables and stats, a range for time series."""

    expr: str
    legend: str = ""
    instant: bool = False


def threshold_query(figure: str) -> Query:
    """Each host's effective alert threshold for a figure: its override, else the default.

    The threshold rules keep only the cluster and instance labels, so they are filtered on
    those alone; a panel drawing one names the rule in its description (NEEDS_RULES)."""
    return Query(
        f'instance:ksm_{figure}:threshold{{cluster=~"$cluster",instance=~"$instance"}}',
        "alert threshold",
    )


# How a panel that draws an alert threshold says which rules the line needs.
NEEDS_RULES = "The threshold line needs the recording rules of ksm-rules.yml ({rule})."


def needs_threshold(figure: str) -> str:
    return NEEDS_RULES.format(rule=f"instance:ksm_{figure}:threshold")


# (value from which the colour applies, colour); None is "from minus infinity".
Steps = Sequence[tuple[float | None, str]]
# raw value -> (text, colour)
Mappings = dict[str, tuple[str, str]]


@dataclass(frozen=True)
class Panel:
    """What every panel must say: a title, what it means and what good looks like, a unit."""

    title: str
    description: str
    unit: str
    queries: Sequence[Query]
    width: int = 6
    height: int = 6
    steps: Steps = ((None, GOOD),)
    mappings: Mappings = field(default_factory=dict)
    no_value: str | None = None
    # Stats: show each series' name next to its value (the name is the information).
    show_names: bool = False
    # Table columns whose unit differs from the panel's, and their own value mappings.
    column_units: dict[str, str] = field(default_factory=dict)
    column_mappings: dict[str, Mappings] = field(default_factory=dict)
    # Table columns that hold a host and open the host dashboard for it.
    host_links: Sequence[str] = ()


# ksmd CPU: scanning must show savings above the first, is excessive above the second.
CPU_STEPS: Steps = (
    (None, GOOD),
    (thresholds.SCANNING_CPU_RATIO, WARN),
    (thresholds.KSMD_CPU_RATIO, BAD),
)

RUN_STATES: Mappings = {
    "-1": ("KSM unavailable", BAD),
    "0": ("stopped", WARN),
    "1": ("running", GOOD),
    "2": ("unmerging", WARN),
    # 4 is the memory-offline bit: ksmd pauses while memory is hot-unplugged.
    "5": ("running, memory going offline", WARN),
}
ON_OFF: Mappings = {"0": ("off", NEUTRAL), "1": ("on", GOOD)}


def run_state_expr(*extra: str) -> str:
    """ksm_run, or -1 where the host has no readable KSM at all."""
    return f"ksm_run{selector(*extra)} or (ksm_available{selector(*extra)} - 1)"


def _targets(panel: Panel) -> list[prometheus_builders.Dataquery]:
    built = []
    for index, query in enumerate(panel.queries):
        target = (
            prometheus_builders.Dataquery()
            .expr(query.expr)
            .legend_format(query.legend or "__auto")
            .ref_id(chr(ord("A") + index))
            .datasource(DATASOURCE)
        )
        if query.instant:
            target.instant().format(prometheus_models.PromQueryFormat.TABLE)
        else:
            target.range()
        built.append(target)
    return built


def _thresholds(steps: Steps) -> dashboard_builders.ThresholdsConfig:
    return (
        dashboard_builders.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=value, color=colour) for value, colour in steps])
    )


def _mappings(mappings: Mappings) -> list[ValueMapping]:
    if not mappings:
        return []
    options = {
        raw: ValueMappingResult(text=text, color=colour, index=index)
        for index, (raw, (text, colour)) in enumerate(mappings.items())
    }
    return [ValueMap(options=options)]


class _Ids:
    def __init__(self) -> None:
        self.last = 0

    def next(self) -> int:
        self.last += 1
        return self.last


AnyPanel = stat.Panel | timeseries.Panel | table.Panel


def _common(builder: AnyPanel, panel: Panel, panel_id: int) -> AnyPanel:
    builder.id(panel_id).title(panel.title).description(panel.description).unit(panel.unit)
    builder.datasource(DATASOURCE).span(panel.width).height(panel.height)
    builder.thresholds(_thresholds(panel.steps))
    for target in _targets(panel):
        builder.with_target(target)
    if panel.mappings:
        builder.mappings(_mappings(panel.mappings))
    if panel.no_value is not None:
        builder.no_value(panel.no_value)
    for column, unit in panel.column_units.items():
        builder.override_by_name(column, [DynamicConfigValue(id_val="unit", value=unit)])
    for column, mappings in panel.column_mappings.items():
        builder.override_by_name(
            column, [DynamicConfigValue(id_val="mappings", value=_mappings(mappings))]
        )
    for column in panel.host_links:
        builder.override_by_name(
            column, [DynamicConfigValue(id_val="links", value=[host_link("${__value.raw}")])]
        )
    return builder


def host_link(instance: str) -> dict[str, str]:
    """A data link to the host dashboard for `instance`, keeping data source and time."""
    return {
        "title": "Open this host",
        "url": f"/d/{HOST_UID}/?var-instance={instance}&${{cluster:queryparam}}"
        "&${datasource:queryparam}&${job:queryparam}&${__url_time_range}",
    }


def stat_panel(panel: Panel, panel_id: int) -> stat.Panel:
    builder = stat.Panel()
    _common(builder, panel, panel_id)
    builder.color_mode(common.BigValueColorMode.BACKGROUND)
    builder.graph_mode(common.BigValueGraphMode.NONE)
    if panel.show_names:
        builder.text_mode(common.BigValueTextMode.VALUE_AND_NAME)
    builder.reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    return builder


def timeseries_panel(panel: Panel, panel_id: int) -> timeseries.Panel:
    builder = timeseries.Panel()
    _common(builder, panel, panel_id)
    builder.fill_opacity(10).line_width(1).span_nulls(False)
    builder.legend(
        common_builders.VizLegendOptions()
        .display_mode(common.LegendDisplayMode.TABLE)
        .placement(common.LegendPlacement.BOTTOM)
        .show_legend(True)
        .calcs(["lastNotNull", "max"])
    )
    if any(colour != GOOD for _, colour in panel.steps):
        builder.thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(
                common.GraphThresholdsStyleMode.DASHED
            )
        )
    if panel.host_links:
        link = host_link("${__field.labels.instance}")
        builder.data_links([dashboard_builders.DashboardLink(link["title"]).url(link["url"])])
    return builder


# Labels that only repeat what the dashboard already filters on.
HIDDEN_COLUMNS = {"Time": True, "__name__": True, "job": True, "cluster": True}


def table_panel(panel: Panel, panel_id: int, sort_desc: bool = True) -> table.Panel:
    builder = table.Panel()
    _common(builder, panel, panel_id)
    if len(panel.queries) > 1:
        builder.with_transformation(DataTransformerConfig(id_val="merge", options={}))
    builder.with_transformation(
        DataTransformerConfig(
            id_val="organize",
            options={"excludeByName": HIDDEN_COLUMNS, "renameByName": _value_names(panel)},
        )
    )
    first_value = _value_column(panel, 0)
    builder.sort_by(
        [common_builders.TableSortByFieldState().display_name(first_value).desc(sort_desc)]
    )
    return builder


def _value_column(panel: Panel, index: int) -> str:
    return panel.queries[index].legend or "Value"


def _value_names(panel: Panel) -> dict[str, str]:
    if len(panel.queries) == 1:
        return {"Value": _value_column(panel, 0)}
    return {
        f"Value #{chr(ord('A') + i)}": _value_column(panel, i) for i in range(len(panel.queries))
    }


class DashboardWriter:
    """Adds rows and panels in reading order, numbering panels so their ids stay stable."""

    def __init__(self, uid: str, title: str, description: str, tags: list[str]) -> None:
        self.ids = _Ids()
        self.builder = (
            dashboard_builders.Dashboard(title)
            .uid(uid)
            .description(description)
            .tags(tags)
            .editable()
            .timezone("browser")
            .time("now-6h", "now")
            .refresh("1m")
            .tooltip(DashboardCursorSync.CROSSHAIR)
        )

    def variables(self, instance_multi: bool) -> None:
        datasource = (
            dashboard_builders.DatasourceVariable("datasource")
            .label("Data source")
            .type("prometheus")
            .current(
                VariableOption(text=f"${{{DATASOURCE_INPUT}}}", value=f"${{{DATASOURCE_INPUT}}}")
            )
        )
        cluster = (
            dashboard_builders.QueryVariable("cluster")
            .label("Cluster")
            .datasource(DATASOURCE)
            .query("label_values(ksm_available, cluster)")
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(ALL)
        )
        job = (
            dashboard_builders.QueryVariable("job")
            .label("Job")
            .datasource(DATASOURCE)
            .query('label_values(ksm_available{cluster=~"$cluster"}, job)')
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(ALL)
        )
        instance = (
            dashboard_builders.QueryVariable("instance")
            .label("Instance")
            .datasource(DATASOURCE)
            .query('label_values(ksm_available{cluster=~"$cluster",job=~"$job"}, instance)')
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(VariableSort.ALPHABETICAL_ASC)
            .multi(instance_multi)
            .include_all(instance_multi)
        )
        if instance_multi:
            instance.all_value(ALL)
        for variable in (datasource, cluster, job, instance):
            self.builder.with_variable(variable)

    def link_to(self, uid: str, title: str) -> None:
        """A link in the dashboard's header, carrying the variables and time range."""
        self.builder.link(
            dashboard_builders.DashboardLink(title)
            .type(DashboardLinkType.LINK)
            .url(f"/d/{uid}/")
            .icon("dashboard")
            .include_vars(True)
            .keep_time(True)
        )

    def annotation(self, name: str, expr: str, color: str) -> None:
        """Marks on every time-series panel where `expr` (a Prometheus query) has a value."""
        self.builder.annotation(
            dashboard_builders.AnnotationQuery()
            .name(name)
            .datasource(DATASOURCE)
            .enable(True)
            .icon_color(color)
            .expr(expr)
        )

    def row(self, title: str) -> None:
        self.builder.with_row(dashboard_builders.Row(title).id(self.ids.next()))

    def stat(self, panel: Panel) -> None:
        self.builder.with_panel(stat_panel(panel, self.ids.next()))

    def timeseries(self, panel: Panel) -> None:
        self.builder.with_panel(timeseries_panel(panel, self.ids.next()))

    def table(self, panel: Panel, sort_desc: bool = True) -> None:
        self.builder.with_panel(table_panel(panel, self.ids.next(), sort_desc))

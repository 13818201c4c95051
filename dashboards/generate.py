"""Writes the dashboards' JSON from their code: `python -m dashboards.generate`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards import fleet, host
from dashboards.common import DATASOURCE_INPUT

HERE = Path(__file__).resolve().parent
DASHBOARDS: dict[str, Callable[[], Dashboard]] = {
    "ksm-host.json": host.build,
    "ksm-fleet.json": fleet.build,
}


# The Grafana release whose dashboard schema the SDK writes (schemaVersion 41).
GRAFANA_VERSION = "11.6.0"
PANEL_NAMES = {"stat": "Stat", "table": "Table", "timeseries": "Time series"}


def for_import(model: dict[str, Any]) -> dict[str, Any]:
    """The dashboard as Grafana's "Export for sharing externally" writes it: __inputs names
    the data source that import asks for, __requires what the dashboard needs."""
    panel_types = sorted({p["type"] for p in model.get("panels", []) if p["type"] != "row"})
    requires = [
        {"type": "grafana", "id": "grafana", "name": "Grafana", "version": GRAFANA_VERSION},
        {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
    ] + [
        {"type": "panel", "id": kind, "name": PANEL_NAMES[kind], "version": ""}
        for kind in panel_types
    ]
    inputs = [
        {
            "name": DATASOURCE_INPUT,
            "label": "Prometheus",
            "description": "The Prometheus that scrapes ksm-exporter",
            "type": "datasource",
            "pluginId": "prometheus",
            "pluginName": "Prometheus",
        }
    ]
    return {"__inputs": inputs, "__requires": requires, **model}


def render(dashboard: Dashboard) -> str:
    model = json.loads(json.dumps(dashboard, cls=JSONEncoder))
    return json.dumps(for_import(model), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    for name, build in DASHBOARDS.items():
        (HERE / name).write_text(render(build()))


if __name__ == "__main__":
    main()

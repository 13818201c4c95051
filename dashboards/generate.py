"""Writes the dashboards' JSON from their code: `python -m dashboards.generate`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards import fleet, host

HERE = Path(__file__).resolve().parent
DASHBOARDS: dict[str, Callable[[], Dashboard]] = {
    "ksm-host.json": host.build,
    "ksm-fleet.json": fleet.build,
}


def render(dashboard: Dashboard) -> str:
    return json.dumps(dashboard, cls=JSONEncoder, indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    for name, build in DASHBOARDS.items():
        (HERE / name).write_text(render(build()))


if __name__ == "__main__":
    main()

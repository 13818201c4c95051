"""The Prometheus rule files of deploy/prometheus/, loaded for assertions."""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path
from typing import Any

import yaml

from harness.paths import REPO

PROMETHEUS_DEPLOY = REPO / "deploy" / "prometheus"
RECORDING_RULES = PROMETHEUS_DEPLOY / "ksm-rules.yml"
ALERTING_RULES = PROMETHEUS_DEPLOY / "ksm-alerts.yml"
RULE_FILES = (RECORDING_RULES, ALERTING_RULES)
EXAMPLE_CONFIG = PROMETHEUS_DEPLOY / "prometheus.yml"

Rule = dict[str, Any]


@functools.cache
def _document(path: Path) -> Any:
    """A rule file parsed once a run: the tests ask for the rules hundreds of times."""
    return yaml.safe_load(path.read_text())


def groups(path: Path) -> list[dict[str, Any]]:
    return list(copy.deepcopy(_document(path))["groups"])


def rules(*paths: Path) -> list[Rule]:
    """Every rule of the files, each with its group's name added under "group"."""
    return [
        {**rule, "group": group["name"]}
        for path in paths or RULE_FILES
        for group in groups(path)
        for rule in group["rules"]
    ]


def recording_rule_names(*paths: Path) -> list[str]:
    """Each recorded metric name once, in file order."""
    return list(dict.fromkeys(rule["record"] for rule in rules(*paths) if "record" in rule))


def alerts() -> list[Rule]:
    return [rule for rule in rules(ALERTING_RULES) if "alert" in rule]


def default_thresholds() -> dict[str, str]:
    """{threshold rule: its default number} from the ksm-thresholds group."""
    (group,) = [g for g in groups(RECORDING_RULES) if g["name"] == "ksm-thresholds"]
    defaults = {}
    for rule in group["rules"]:
        match = re.fullmatch(r"vector\((-?[\d.]+)\)", rule["expr"].strip())
        if match and "labels" not in rule:
            defaults[rule["record"]] = match.group(1)
    return defaults

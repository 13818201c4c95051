"""The alert reaches a person: real KSM made to burn CPU, the exporter, Debian's Prometheus
with the shipped rules (rendered from the mixin with short windows), Debian's Alertmanager
routing to a webhook this test runs. KsmdExcessiveCpu arrives with its summary, severity and
runbook link, and resolves once KSM's settings are put back."""

from __future__ import annotations

import time
import urllib.parse
from pathlib import Path

import pytest
import yaml

from harness.exporter_process import running_exporter
from harness.prometheus_server import running_prometheus
from harness.real_ksm import ksm_control, merging_child
from harness.rule_files import ALERTING_RULES
from ksm_exporter.sources.ksmd import find_ksmd
from mixin.render import evaluate, rule_files
from tests.support.alertmanager import route_to, running_alertmanager, webhook_receiver
from tests.support.monitoring_stack import JOB, example_config_for

pytestmark = pytest.mark.realksm

ALERT = "KsmdExcessiveCpu"
# The default threshold (0.25 of a core) suits a host of its own; beside other work on two
# shared cores ksmd got 0.25 to 0.48 of one under the settings below, so this threshold
# leaves a margin. The shipped rules otherwise, with 20 s windows instead of 5 min and a
# `for:` of 10 s instead of 15 min.
THRESHOLD = 0.1
CHILD_BYTES = 64 << 20
SETTINGS = {"pages_to_scan": 20000, "sleep_millisecs": 1}


def rendered_rules(directory: Path) -> dict[str, object]:
    """Writes the mixin's rule files with short windows into `directory`; the alert's rule."""
    defaults = evaluate("mixin._config")
    config = {
        "rateInterval": "20s",
        "alertFor": {**defaults["alertFor"], ALERT: "10s"},
        "thresholds": {**defaults["thresholds"], "ksmd_cpu_ratio": THRESHOLD},
    }
    for name, text in rule_files(config).items():
        (directory / name).write_text(text)
    groups = yaml.safe_load((directory / ALERTING_RULES.name).read_text())["groups"]
    (rule,) = [r for g in groups for r in g["rules"] if r.get("alert") == ALERT]
    return dict(rule)


def ksmd_cpu_seconds(pid: int) -> float:
    """ksmd's CPU time from its schedstat, as the kernel's advisor reads it."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0]) / 1e9


def test_ksmd_excessive_cpu_reaches_the_webhook_and_resolves(tmp_path: Path) -> None:
    rule = rendered_rules(tmp_path)
    started = time.monotonic()
    with (
        webhook_receiver() as receiver,
        running_alertmanager(route_to(receiver.url)) as alertmanager,
        ksm_control() as ksm,
        merging_child(CHILD_BYTES) as child,
    ):
        ksmd = find_ksmd("/proc")
        assert ksmd is not None, "KSM is writable but no ksmd thread is in sight"
        if ksm.advisor_mode is not None:
            # Under the scan-time advisor the threshold is its advisor_max_cpu; without it,
            # the mixin's threshold.
            ksm.set_advisor_mode("none")
        ksm.set(**SETTINGS, run=1)
        child.wait_merged(CHILD_BYTES // 4096 // 2)
        child.churn()
        cpu, since = ksmd_cpu_seconds(ksmd), time.monotonic()
        with (
            running_exporter() as exporter,
            running_prometheus(
                example_config_for(exporter, rules=tmp_path, alertmanager=alertmanager.address)
            ),
        ):
            firing = receiver.wait_for(ALERT, "firing")
            share = (ksmd_cpu_seconds(ksmd) - cpu) / (time.monotonic() - since)
            fired = time.monotonic() - started
            ksm.restore()
            resolved = receiver.wait_for(ALERT, "resolved")
    print(f"{ALERT}: firing after {fired:.0f} s, resolved after {time.monotonic() - started:.0f} s")

    # ksmd truly used more than the threshold, by the kernel's own count.
    assert share > THRESHOLD, share
    (alert,) = [a for a in firing["alerts"] if a["labels"]["alertname"] == ALERT]
    assert alert["status"] == "firing"
    assert alert["labels"]["severity"] == rule["labels"]["severity"]  # type: ignore[index]
    assert alert["labels"]["job"] == JOB
    assert alert["labels"]["instance"] == exporter.address
    annotations = alert["annotations"]
    assert annotations["summary"] == rule["annotations"]["summary"]  # type: ignore[index]
    runbook = urllib.parse.urlsplit(annotations["runbook_url"])
    assert (runbook.scheme, bool(runbook.netloc)) == ("https", True)
    assert runbook.fragment == ALERT.lower()
    assert exporter.address in annotations["description"]
    assert "above the threshold of 10%" in annotations["description"]
    assert firing["receiver"] == "ksm"

    (gone,) = [a for a in resolved["alerts"] if a["labels"]["alertname"] == ALERT]
    assert gone["status"] == "resolved"
    assert gone["fingerprint"] == alert["fingerprint"]
    assert gone["endsAt"] > gone["startsAt"]

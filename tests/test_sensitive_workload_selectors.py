"""The selectors the runbook offers for KsmSensitiveWorkloadMerging select what it says.

Each PromQL block of the alert's runbook section becomes the mixin's sensitiveWorkloads, the
rules are rendered with it and run by promtool over the same processes; the first block is
the shipped selector itself.
"""

from __future__ import annotations

import re
import shlex
import textwrap
from pathlib import Path

import pytest
import yaml

from harness.paths import REPO
from harness.tools import promtool
from ksm_exporter.cli import build_parser, load_settings
from ksm_exporter.derive.process_selection import always_included
from ksm_exporter.sources.process_identity import ProcessIdentity
from mixin.render import evaluate, rule_files

RUNBOOK = REPO / "docs" / "runbook.md"

POD_UID = "0d2ab3c4-1f2e-4a5b-8c9d-0e1f2a3b4c5d"
OTHER_POD_UID = "7e6d5c4b-3a29-4817-a6b5-c4d3e2f1a0b9"
CGROUPFS_POD_UID = "11111111-2222-4333-8444-555555555555"
PROCESSES = {
    "300": {"comm": "qemu-system-x86", "vm": "sensitive-db"},
    "301": {"comm": "qemu-system-x86", "vm": "vault"},
    "302": {"comm": "postgres", "cgroup": "/system.slice/postgresql.service"},
    # A KubeVirt VM: the exporter splits virt-launcher's guest name payments_ledger.
    "303": {
        "comm": "qemu-kvm",
        "vm": "ledger",
        "namespace": "payments",
        "cgroup": "/kubepods.slice/x.scope",
    },
    "304": {
        "comm": "java",
        "cgroup": "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
        + POD_UID.replace("-", "_")
        + ".slice/cri-containerd-4f1e.scope",
    },
    "305": {
        "comm": "java",
        "cgroup": "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod"
        + OTHER_POD_UID.replace("-", "_")
        + ".slice/cri-containerd-9a0b.scope",
    },
    "306": {"comm": "redis-server", "cgroup": f"/kubepods/burstable/pod{CGROUPFS_POD_UID}/5c3d"},
    "307": {"comm": "qemu-system-x86", "vm": "payments-web"},
    "308": {"comm": "postgres", "cgroup": "/system.slice/postgresql-backup.service"},
}
PODS = {POD_UID: "payments", OTHER_POD_UID: "default", CGROUPFS_POD_UID: "vault"}

# For each PromQL block of the runbook section, in order: the processes it must select.
EXPECTED = [{"300"}, {"301"}, {"302"}, {"303"}, {"304", "306"}]
# The runbook's --collector.process.always-include example keeps these processes apart
# (pods are known to the exporter only by UID).
ALWAYS_INCLUDED = {"300", "301", "302", "303"}


def runbook_section() -> str:
    text = RUNBOOK.read_text()
    start = text.index("## KsmSensitiveWorkloadMerging\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def runbook_selectors() -> list[str]:
    blocks = re.findall(r"^( *)```promql\n(.*?)^\1```", runbook_section(), re.MULTILINE | re.DOTALL)
    return [textwrap.dedent(body) for _, body in blocks]


def runbook_exporter_flags() -> list[str]:
    """The flags of the `ksm-exporter` command line the runbook section shows."""
    blocks = re.findall(r"^```sh\n(.*?)^```", runbook_section(), re.MULTILINE | re.DOTALL)
    commands = [shlex.split(line) for block in blocks for line in block.splitlines()]
    return [word for words in commands if words[:1] == ["ksm-exporter"] for word in words[1:]]


def shipped_selector() -> str:
    selector = evaluate("mixin._config")["sensitiveWorkloads"]
    assert isinstance(selector, str)
    return selector


def series(name: str, labels: dict[str, str], values: str) -> dict[str, str]:
    text = ", ".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    return {"series": f"{name}{{{text}}}", "values": values}


def unit_test(selected: set[str]) -> dict[str, object]:
    host = {"job": "ksm-exporter", "instance": "hv:10131"}
    inputs = [series("ksm_page_size_bytes", host, "4096x10")]
    for pid, labels in PROCESSES.items():
        inputs.append(series("ksm_process_merging_pages", {**host, "pid": pid, **labels}, "100x10"))
    for uid, namespace in PODS.items():
        ksm = {"job": "kube-state-metrics", "instance": "ksm:8080", "pod": f"pod-{uid[:4]}"}
        inputs.append(series("kube_pod_info", {**ksm, "namespace": namespace, "uid": uid}, "1x10"))
    firing = 'ALERTS{alertname="KsmSensitiveWorkloadMerging", alertstate="firing"}'
    return {
        "rule_files": ["ksm-rules.yml", "ksm-alerts.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": inputs,
                "promql_expr_test": [
                    {
                        "expr": f"count by (pid) ({firing})",
                        "eval_time": "6m",
                        "exp_samples": [
                            {"labels": f'{{pid="{pid}"}}', "value": 1} for pid in sorted(selected)
                        ],
                    }
                ],
            }
        ],
    }


@pytest.mark.unit
def test_the_runbook_opens_with_the_shipped_selector() -> None:
    assert runbook_selectors()[0] == shipped_selector()


@pytest.mark.unit
def test_every_runbook_selector_has_its_expected_processes() -> None:
    assert len(runbook_selectors()) == len(EXPECTED)


@pytest.mark.e2e
@pytest.mark.parametrize("index", range(len(EXPECTED)))
def test_the_runbook_selector_selects_exactly_its_workloads(tmp_path: Path, index: int) -> None:
    selector = runbook_selectors()[index]
    for name, text in rule_files({"sensitiveWorkloads": selector}).items():
        (tmp_path / name).write_text(text)
    (tmp_path / "test.yml").write_text(yaml.safe_dump(unit_test(EXPECTED[index])))
    run = promtool("test", "rules", "test.yml", cwd=tmp_path)
    assert run.returncode == 0, f"selector:\n{selector}\n{run.stdout}{run.stderr}"


@pytest.mark.unit
def test_the_runbook_always_include_pattern_keeps_the_sensitive_processes_apart() -> None:
    settings = load_settings(build_parser().parse_args(runbook_exporter_flags()))
    identities = {int(pid): ProcessIdentity(labels) for pid, labels in PROCESSES.items()}
    kept = always_included(identities, settings.process_always_include)
    assert {str(pid) for pid in kept} == ALWAYS_INCLUDED

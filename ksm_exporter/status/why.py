"""`ksm-exporter status --why PID|VM`: the chain of checks for one process or VM, with the
evidence of each, as text or JSON."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from ksm_exporter.derive.causes import Check, Explanation
from ksm_exporter.reading.host_reader import HostReader
from ksm_exporter.reading.processes import ProcessOptions
from ksm_exporter.reading.why import pids_of_vm
from ksm_exporter.sources.kernel_file import read_bytes
from ksm_exporter.sources.roots import Roots

MARKS = {True: "CAUSE", False: "no", None: "unknown"}


@dataclass(frozen=True, slots=True)
class WhyAnswer:
    """What `status --why` prints, and its exit status (0 explained, 1 nothing to explain)."""

    text: str
    data: dict[str, Any]
    status: int


def check_json(check: Check) -> dict[str, Any]:
    return {
        "reason": check.reason,
        "holds": check.holds,
        "sentence": check.sentence,
        "evidence": [{"file": e.path, "value": e.value} for e in check.evidence],
    }


def explanation_json(explanation: Explanation) -> dict[str, Any]:
    return {
        "pid": explanation.pid,
        "reason": explanation.reason,
        "sentence": explanation.sentence,
        "checks": [check_json(check) for check in explanation.checks],
    }


def check_lines(check: Check) -> list[str]:
    lines = [f"  {MARKS[check.holds]:<8} {check.sentence}"]
    lines.extend(f"           {e.path}: {e.value}" for e in check.evidence)
    return lines


def _comm(roots: Roots, pid: int) -> str:
    try:
        raw = read_bytes(os.path.join(roots.process(pid), "comm"))
    except OSError:
        return "?"
    return raw.strip().decode("utf-8", "replace") if raw else "?"


def explanation_text(roots: Roots, explanation: Explanation, vm: str = "") -> str:
    subject = f"process {explanation.pid} ({_comm(roots, explanation.pid)}" + (
        f", VM {vm})" if vm else ")"
    )
    lines = [f"Why does {subject} merge little?"]
    for check in explanation.checks:
        lines.extend(check_lines(check))
    lines.append(f"Cause: {explanation.reason}: {explanation.sentence}")
    return "\n".join(lines) + "\n"


def answer_why(roots: Roots, target: str) -> WhyAnswer:
    """Explains the process `target` names (a PID, or a QEMU guest's name)."""
    vm = ""
    if target.isdigit():
        pid = int(target)
    else:
        pids = pids_of_vm(roots.procfs, target)
        if not pids:
            line = f"no QEMU process names its guest {target!r}"
            return WhyAnswer(line + "\n", {"error": line}, 1)
        if len(pids) > 1:
            shown = ", ".join(str(p) for p in pids)
            line = f"VM {target!r} matches {len(pids)} processes ({shown}): ask with --why PID"
            return WhyAnswer(line + "\n", {"error": line, "pids": pids}, 1)
        pid, vm = pids[0], target
    if not os.path.isdir(roots.process(pid)):
        line = f"no process {pid}"
        return WhyAnswer(line + "\n", {"error": line}, 1)
    reader = HostReader(roots, processes=ProcessOptions(enabled=False))
    try:
        explanation = reader.explainer(reader.read()).explain(pid)
    finally:
        reader.close()
    data = explanation_json(explanation)
    if vm:
        data["vm"] = vm
    return WhyAnswer(explanation_text(roots, explanation, vm), data, 0)


def render_why(answer: WhyAnswer, as_json: bool) -> str:
    return json.dumps(answer.data, indent=2) + "\n" if as_json else answer.text

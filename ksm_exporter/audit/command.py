"""`ksm-exporter audit`: reads, never writes; says in one line what keeps it from seeing."""

from __future__ import annotations

import sys

from ksm_exporter.audit.model import take_audit
from ksm_exporter.audit.render import render_json, render_text
from ksm_exporter.derive.tenants import TenantKey
from ksm_exporter.sources.roots import Roots

EXIT_CANNOT_SEE = 1


def say(reason: str) -> int:
    print(f"ksm-exporter audit: {reason}", file=sys.stderr)
    return EXIT_CANNOT_SEE


def audit(roots: Roots, key: TenantKey, as_json: bool, top: int) -> int:
    result = take_audit(roots, key)
    reading = result.reading
    # Without the frames there is no finding at all: "no sharing" would be a false one.
    if reading.missing_privilege:
        return say(reading.missing_privilege)
    if reading.kpageflags_error:
        return say(
            f"{roots.procfs}/kpageflags: {reading.kpageflags_error}"
            " (root's, mode 0400; a kernel without CONFIG_PROC_PAGE_MONITOR has none)"
        )
    if reading.processes and not reading.read:
        return say(
            "no registered process could be read: "
            + "; ".join(f"pid {p.pid}: {p.error}" for p in reading.failed[:3])
        )
    print(render_json(result) if as_json else render_text(result, top), end="")
    return 0

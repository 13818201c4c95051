"""Which tenant a process belongs to, by the key the operator picks (`--tenant-by`).

    vm            the QEMU guest name (`-name`), KubeVirt's VMI name
    namespace     the KubeVirt namespace of a guest
    uid           the process's real uid
    unit          the systemd unit of its cgroup path: the last service or scope, the unit whose
                  MemoryKSM= applies (sources/systemd_unit.py)
    cgroup        the whole cgroup v2 path
    cgroup:N      its first N components, e.g. cgroup:2 -> /machine.slice/machine-qemu-1.scope
    cgroup:REGEX  what the regular expression matches in it (its first group if it has one)

A process without the key (a process that is not a guest under `vm`, a path the expression
does not match) is a tenant of its own, named after its pid and command: putting all such
processes together would report their sharing with one another as sharing within a tenant.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from ksm_exporter.derive.sharing import TenantFrames
from ksm_exporter.sources.page_sharing import ProcessPages
from ksm_exporter.sources.systemd_unit import unit_of_cgroup

KEYS = ("vm", "namespace", "cgroup", "uid", "unit")


class BadTenantKey(ValueError):
    """A --tenant-by value that names no key."""


@dataclass(frozen=True, slots=True)
class TenantKey:
    kind: str
    depth: int | None = None
    pattern: re.Pattern[str] | None = None

    def describe(self) -> str:
        if self.depth is not None:
            return f"cgroup:{self.depth}"
        if self.pattern is not None:
            return f"cgroup:{self.pattern.pattern}"
        return self.kind


def parse_tenant_key(text: str) -> TenantKey:
    kind, colon, argument = text.partition(":")
    if kind not in KEYS:
        raise BadTenantKey(f"{text!r}: one of {', '.join(KEYS)} (cgroup:N, cgroup:REGEX)")
    if not colon:
        return TenantKey(kind)
    if kind != "cgroup" or not argument:
        raise BadTenantKey(f"{text!r}: only cgroup takes an argument, a depth or an expression")
    if argument.isdigit():
        if int(argument) < 1:
            raise BadTenantKey(f"{text!r}: a depth of 1 or more")
        return TenantKey(kind, depth=int(argument))
    try:
        return TenantKey(kind, pattern=re.compile(argument))
    except re.error as err:
        raise BadTenantKey(f"{text!r}: not a regular expression: {err}") from err


def _cgroup_part(key: TenantKey, cgroup: str) -> str:
    if not cgroup:
        return ""
    if key.depth is not None:
        parts = cgroup.strip("/").split("/")
        return "/" + "/".join(parts[: key.depth]) if len(parts) >= key.depth else ""
    if key.pattern is not None:
        match = key.pattern.search(cgroup)
        if match is None:
            return ""
        return match.group(1) if match.re.groups else match.group(0)
    return cgroup


def tenant_of(key: TenantKey, labels: Mapping[str, str], uid: int | None) -> str:
    """The tenant's name under `key`, "" when the process has none."""
    extract: dict[str, Callable[[], str]] = {
        "vm": lambda: labels.get("vm", ""),
        "namespace": lambda: labels.get("namespace", ""),
        "uid": lambda: "" if uid is None else str(uid),
        "unit": lambda: unit_of_cgroup(labels.get("cgroup", "")) or "",
        "cgroup": lambda: _cgroup_part(key, labels.get("cgroup", "")),
    }
    return extract[key.kind]()


def own_tenant(pid: int, comm: str) -> str:
    """The name of the tenant of one process without the key."""
    return f"pid {pid} ({comm})" if comm else f"pid {pid}"


def group_by_tenant(key: TenantKey, processes: Iterable[ProcessPages]) -> list[TenantFrames]:
    """The processes read, grouped into tenants, each with the KSM frames it maps; processes
    that could not be read are left out (the reading lists them)."""
    groups: dict[str, list[ProcessPages]] = {}
    keyed: dict[str, bool] = {}
    for process in processes:
        if process.error:
            continue
        name = tenant_of(key, process.labels, process.uid)
        if not name:
            name = own_tenant(process.pid, process.labels.get("comm", ""))
            keyed[name] = False
        groups.setdefault(name, []).append(process)
    tenants = []
    for name, members in groups.items():
        merging = [p.merging_pages for p in members]
        tenants.append(
            TenantFrames(
                name=name,
                mappings=tuple(p.ksm_frames for p in members),
                pids=tuple(p.pid for p in members),
                keyed=keyed.get(name, True),
                merging_pages=None if None in merging else sum(m or 0 for m in merging),
                comm="" if keyed.get(name, True) else members[0].labels.get("comm", ""),
            )
        )
    return tenants

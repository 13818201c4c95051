"""`<sysfs>/kernel/mm/ksm/`: one typed snapshot of every KSM attribute the kernel offers."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from ksm_exporter.sources.kernel_file import (
    BadValue,
    Problem,
    decode,
    os_error_reason,
    parse_signed,
    parse_unsigned,
    read_bytes,
    show_value,
)


@dataclass(frozen=True, slots=True)
class AdvisorMode:
    """`advisor_mode` lists every mode and brackets the active one: `[none] scan-time`."""

    active: str
    modes: tuple[str, ...]


def parse_advisor_mode(raw: bytes) -> AdvisorMode:
    modes: list[str] = []
    active: str | None = None
    for word in decode(raw).split():
        if word.startswith("[") and word.endswith("]") and len(word) > 2:
            if active is not None:
                raise BadValue("more than one active mode")
            active = word[1:-1]
            modes.append(active)
        elif "[" in word or "]" in word:
            raise BadValue("unbalanced brackets")
        else:
            modes.append(word)
    if active is None:
        raise BadValue("no bracketed active mode")
    return AdvisorMode(active=active, modes=tuple(modes))


@dataclass(frozen=True, slots=True)
class KsmSysfs:
    """Each attribute is None when its file is absent (older kernel) or unreadable."""

    available: bool = False
    run: int | None = None
    pages_to_scan: int | None = None
    sleep_millisecs: int | None = None
    pages_shared: int | None = None
    pages_sharing: int | None = None
    pages_unshared: int | None = None
    pages_volatile: int | None = None
    full_scans: int | None = None
    merge_across_nodes: int | None = None
    use_zero_pages: int | None = None
    max_page_sharing: int | None = None
    stable_node_chains: int | None = None
    stable_node_dups: int | None = None
    stable_node_chains_prune_millisecs: int | None = None
    general_profit: int | None = None
    ksm_zero_pages: int | None = None
    pages_scanned: int | None = None
    smart_scan: int | None = None
    pages_skipped: int | None = None
    advisor_mode: AdvisorMode | None = None
    advisor_max_cpu: int | None = None
    advisor_target_scan_time: int | None = None
    advisor_min_pages_to_scan: int | None = None
    advisor_max_pages_to_scan: int | None = None


Parser = Callable[[bytes], object]

# File name -> parser; the file name is also the snapshot's attribute name.
PARSERS: dict[str, Parser] = {
    name: parse_unsigned
    for name in KsmSysfs.__dataclass_fields__
    if name not in {"available", "general_profit", "advisor_mode"}
}
PARSERS["general_profit"] = parse_signed  # negative when metadata outweighs savings
PARSERS["advisor_mode"] = parse_advisor_mode


@dataclass(frozen=True, slots=True)
class SysfsReading:
    snapshot: KsmSysfs
    problems: tuple[Problem, ...] = field(default=())


def ksm_dir(sysfs_root: str) -> str:
    return os.path.join(sysfs_root, "kernel", "mm", "ksm")


def read_ksm_sysfs(sysfs_root: str) -> SysfsReading:
    """Read every KSM attribute under `sysfs_root`; never raises."""
    directory = ksm_dir(sysfs_root)
    if not os.path.isdir(directory):
        return SysfsReading(KsmSysfs(available=False))  # no KSM in this kernel: not an error
    if not os.access(directory, os.R_OK | os.X_OK):
        return SysfsReading(KsmSysfs(available=False), (Problem(directory, "", "not readable"),))
    values: dict[str, object] = {}
    problems: list[Problem] = []
    for name in PARSERS:
        value, problem = read_attribute(directory, name)
        if problem is not None:
            problems.append(problem)
        elif value is not None:
            values[name] = value
    snapshot = KsmSysfs(available=True, **values)  # type: ignore[arg-type]
    return SysfsReading(snapshot, tuple(problems))


def read_attribute(directory: str, name: str) -> tuple[object | None, Problem | None]:
    """One KSM file's parsed value (None when absent), or the problem with it; never raises."""
    path = os.path.join(directory, name)
    raw: bytes | None = None
    try:
        raw = read_bytes(path)
        return (None if raw is None else PARSERS[name](raw)), None
    except OSError as err:
        return None, Problem(path, "", os_error_reason(err))
    except BadValue as err:
        return None, Problem(path, show_value(raw or b""), str(err))


def read_full_scans(sysfs_root: str) -> int | None:
    """Only `full_scans`, for the background sampler; None when absent or unusable."""
    value, _problem = read_attribute(ksm_dir(sysfs_root), "full_scans")
    return value if isinstance(value, int) else None

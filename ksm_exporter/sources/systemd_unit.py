"""Whether the systemd unit a process runs in asks for `MemoryKSM=yes`.

systemd (src/core/exec-invoke.c) calls prctl(PR_SET_MEMORY_MERGE, 1) before it executes a
unit's command when the unit says `MemoryKSM=yes`; the kernel then shows `ksm_merge_any: yes`
in the process's ksm_stat. The unit is the last `.service` or `.scope` of the process's cgroup
v2 path; its setting is read from the unit file and its drop-ins as systemd orders them
(/etc over /run over /usr/lib, drop-ins by file name, the last assignment winning). Units
systemd generates or receives over D-Bus without a file are not seen: the answer is then
None, unknown, never "no".
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# systemd's unit search path for the system manager, first match wins for the unit file.
UNIT_DIRS = (
    "etc/systemd/system.control",
    "run/systemd/system.control",
    "run/systemd/transient",
    "etc/systemd/system",
    "run/systemd/system",
    "usr/local/lib/systemd/system",
    "usr/lib/systemd/system",
    "lib/systemd/system",
)
_READ_LIMIT = 1 << 16
_TRUE = frozenset(("1", "yes", "true", "on", "y", "t"))  # parse_boolean() in src/basic/parse-util.c


@dataclass(frozen=True, slots=True)
class MemoryKsmSetting:
    unit: str
    enabled: bool
    path: str  # the file whose assignment wins


def unit_of_cgroup(cgroup: str) -> str | None:
    """`/system.slice/foo.service` -> `foo.service`; the last service or scope in the path."""
    for part in reversed(cgroup.split("/")):
        if part.endswith((".service", ".scope")):
            return part
    return None


def _template(unit: str) -> str | None:
    name, at, rest = unit.partition("@")
    if not at:
        return None
    return name + "@" + rest[rest.rfind(".") :]


def _assignment(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            raw = f.read(_READ_LIMIT)
    except OSError:
        return None
    value = None
    for line in raw.decode("utf-8", "replace").splitlines():
        key, sep, rest = line.strip().partition("=")
        if sep and key.strip() == "MemoryKSM":
            value = rest.strip()
    return value


def read_memory_ksm(cgroup: str, root: str = "/") -> MemoryKsmSetting | None:
    """The unit's MemoryKSM= where a unit file or drop-in sets it, else None; never raises."""
    unit = unit_of_cgroup(cgroup)
    if unit is None:
        return None
    names = [unit, *filter(None, [_template(unit)])]
    files: list[str] = []
    for name in names:
        main = next(
            (
                path
                for directory in UNIT_DIRS
                if os.path.isfile(path := os.path.join(root, directory, name))
            ),
            None,
        )
        if main is not None:
            files.append(main)
            break
    dropins: dict[str, str] = {}  # file name -> path: the first directory's wins
    for name in reversed(names):
        for directory in UNIT_DIRS:
            folder = os.path.join(root, directory, name + ".d")
            try:
                entries = os.listdir(folder)
            except OSError:
                continue
            for entry in entries:
                if entry.endswith(".conf"):
                    dropins.setdefault(entry, os.path.join(folder, entry))
    files.extend(dropins[entry] for entry in sorted(dropins))
    setting = None
    for path in files:
        value = _assignment(path)
        if value is not None:
            setting = MemoryKsmSetting(unit, value.lower() in _TRUE, path)
    return setting

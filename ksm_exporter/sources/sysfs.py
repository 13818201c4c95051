"""`<sysfs>/kernel/mm/ksm/`: one typed snapshot of every KSM attribute the kernel offers."""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from ksm_exporter.sources.kernel_file import (
    READ_LIMIT,
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
    """Read every KSM attribute under `sysfs_root`, opening each file afresh; never raises."""
    directory = ksm_dir(sysfs_root)
    if not os.path.isdir(directory):
        return SysfsReading(KsmSysfs(available=False))  # no KSM in this kernel: not an error
    if not os.access(directory, os.R_OK | os.X_OK):
        return SysfsReading(KsmSysfs(available=False), (Problem(directory, "", "not readable"),))
    return _snapshot(directory, _opened_afresh(directory))


def _opened_afresh(directory: str) -> Callable[[str], bytes | None]:
    return lambda name: read_bytes(os.path.join(directory, name))


def _snapshot(directory: str, content_of: Callable[[str], bytes | None]) -> SysfsReading:
    """Parse each attribute's content; `content_of` returns None for an absent file."""
    values: dict[str, object] = {}
    problems: list[Problem] = []
    for name in PARSERS:
        value, problem = parse_attribute(directory, name, content_of)
        if problem is not None:
            problems.append(problem)
        elif value is not None:
            values[name] = value
    snapshot = KsmSysfs(available=True, **values)  # type: ignore[arg-type]
    return SysfsReading(snapshot, tuple(problems))


def parse_attribute(
    directory: str, name: str, content_of: Callable[[str], bytes | None]
) -> tuple[object | None, Problem | None]:
    """One KSM file's parsed value (None when absent), or the problem with it; never raises."""
    raw: bytes | None = None
    try:
        raw = content_of(name)
        return (None if raw is None else PARSERS[name](raw)), None
    except OSError as err:
        return None, Problem(os.path.join(directory, name), "", os_error_reason(err))
    except BadValue as err:
        return None, Problem(os.path.join(directory, name), show_value(raw or b""), str(err))


def read_full_scans(sysfs_root: str) -> int | None:
    """Only `full_scans`, for the background sampler; None when absent or unusable."""
    directory = ksm_dir(sysfs_root)
    value, _problem = parse_attribute(directory, "full_scans", _opened_afresh(directory))
    return value if isinstance(value, int) else None


class HeldKsmSysfs:
    """Reads the KSM attributes through descriptors held open from one scrape to the next.

    Opening a sysfs file costs several times more than reading it, and sysfs renders an
    attribute afresh on every read from offset 0, so a held descriptor gives current values.
    The descriptors are dropped, and the files opened afresh, whenever the directory's
    identity or metadata changes (replaced, removed, chmod, an entry added or removed) or a
    read fails: faults and their recovery show on the next scrape as they would with fresh
    opens. While any file cannot be opened, every scrape opens afresh.
    """

    def __init__(self, sysfs_root: str) -> None:
        self.sysfs_root = sysfs_root
        self.directory = ksm_dir(sysfs_root)
        self._held: dict[str, int | None] = {}  # name -> descriptor, None where absent
        self._identity: tuple[int, ...] | None = None
        # A reader dropped without close() still gives its descriptors back.
        weakref.finalize(self, _close_all, self._held)

    def read(self) -> SysfsReading:
        try:
            identity = _identity(os.stat(self.directory))
        except OSError:
            identity = None
        if identity is None or identity != self._identity:
            self.close()
            reading = read_ksm_sysfs(self.sysfs_root)
            if identity is not None and reading.snapshot.available:
                self._hold(identity)
            return reading
        return _snapshot(self.directory, self._pread)

    def _hold(self, identity: tuple[int, ...]) -> None:
        try:
            for name in PARSERS:
                path = os.path.join(self.directory, name)
                try:
                    self._held[name] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    self._held[name] = None
        except OSError:
            self.close()  # a file we cannot open: report it on every scrape, by fresh opens
            return
        self._identity = identity

    def _pread(self, name: str) -> bytes | None:
        fd = self._held[name]
        if fd is None:
            return None
        try:
            return os.pread(fd, READ_LIMIT, 0)
        except OSError:
            self._identity = None  # open afresh next time
            raise

    def close(self) -> None:
        _close_all(self._held)
        self._identity = None


def _close_all(held: dict[str, int | None]) -> None:
    for fd in held.values():
        if fd is not None:
            os.close(fd)
    held.clear()


def _identity(st: os.stat_result) -> tuple[int, ...]:
    """What changes when the directory is replaced or its entries or permissions change."""
    return (
        st.st_dev,
        st.st_ino,
        st.st_mode,
        st.st_nlink,
        st.st_size,
        st.st_mtime_ns,
        st.st_ctime_ns,
    )

"""`<sysfs>/kernel/mm/ksm/`: one typed snapshot of every KSM attribute the kernel offers."""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import overload

from ksm_exporter.sources.kernel_file import (
    READ_LIMIT,
    BadValue,
    Problem,
    close_all,
    decode,
    os_error_reason,
    read_bytes,
    show_value,
)
from ksm_exporter.sources.ksm_files import ADVISOR_MODE_FILE, DECLARED, Declared


@dataclass(frozen=True, slots=True)
class AdvisorMode:
    """`advisor_mode` lists every mode and brackets the active one: `[none] scan-time`."""

    active: str
    modes: tuple[str, ...]

    @property
    def scan_time(self) -> bool:
        """The kernel's scan-time advisor sets pages_to_scan (ksm.c: scan_time_advisor())."""
        return self.active == "scan-time"


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


class KsmNumber:
    """Typed access to one number file's value, `ksm.pages_sharing`: a misspelt name is an
    attribute mypy does not know. The attribute's name is the file's."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, ksm: None, owner: type) -> KsmNumber: ...
    @overload
    def __get__(self, ksm: KsmSysfs, owner: type) -> int | None: ...
    def __get__(self, ksm: KsmSysfs | None, owner: type) -> KsmNumber | int | None:
        return self if ksm is None else ksm.values.get(self.name)


@dataclass(frozen=True, slots=True, init=False)
class KsmSysfs:
    """One reading of every KSM file, by file name (`ksm.pages_sharing`, or `ksm.values` for
    any declared file).

    A file's value is None when the file is absent (an older kernel) or unusable; the names of
    the files that are present but could not be read or parsed are in `unreadable`, so that a
    figure built on one of them is left out rather than computed as if the file held 0.
    The constructor takes the numbers by file name too (`KsmSysfs(True, run=1)`), as tests
    and simulations write a reading.
    """

    available: bool
    unreadable: frozenset[str]
    advisor_mode: AdvisorMode | None
    values: dict[str, int]

    def __init__(
        self,
        available: bool = False,
        *,
        unreadable: frozenset[str] = frozenset(),
        advisor_mode: AdvisorMode | None = None,
        values: Mapping[str, int] | None = None,
        **numbers: int,
    ) -> None:
        object.__setattr__(self, "available", available)
        object.__setattr__(self, "unreadable", unreadable)
        object.__setattr__(self, "advisor_mode", advisor_mode)
        object.__setattr__(self, "values", {**(values or {}), **numbers})

    run = KsmNumber()
    pages_to_scan = KsmNumber()
    sleep_millisecs = KsmNumber()
    pages_shared = KsmNumber()
    pages_sharing = KsmNumber()
    pages_unshared = KsmNumber()
    pages_volatile = KsmNumber()
    full_scans = KsmNumber()
    merge_across_nodes = KsmNumber()
    use_zero_pages = KsmNumber()
    max_page_sharing = KsmNumber()
    stable_node_chains = KsmNumber()
    stable_node_dups = KsmNumber()
    stable_node_chains_prune_millisecs = KsmNumber()
    general_profit = KsmNumber()
    ksm_zero_pages = KsmNumber()
    pages_scanned = KsmNumber()
    smart_scan = KsmNumber()
    pages_skipped = KsmNumber()
    advisor_max_cpu = KsmNumber()
    advisor_target_scan_time = KsmNumber()
    advisor_min_pages_to_scan = KsmNumber()
    advisor_max_pages_to_scan = KsmNumber()

    def usable(self, *names: str) -> bool:
        """True when none of these files is present but unreadable."""
        return not self.unreadable.intersection(names)

    def as_dict(self, declared: Declared = DECLARED) -> dict[str, object]:
        """Every file this kernel may have, None where it does not: for JSON."""
        numbers: dict[str, object] = {name: self.values.get(name) for name in declared.names}
        mode = self.advisor_mode
        numbers[ADVISOR_MODE_FILE] = (
            None if mode is None else {"active": mode.active, "modes": list(mode.modes)}
        )
        return {"available": self.available, **numbers}


def parser_of(name: str, declared: Declared) -> Callable[[bytes], object]:
    spec = declared.numbers.get(name)
    return parse_advisor_mode if spec is None else spec.parse


@dataclass(frozen=True, slots=True)
class SysfsReading:
    snapshot: KsmSysfs
    problems: tuple[Problem, ...] = ()


def ksm_dir(sysfs_root: str) -> str:
    return os.path.join(sysfs_root, "kernel", "mm", "ksm")


def read_ksm_sysfs(sysfs_root: str, declared: Declared = DECLARED) -> SysfsReading:
    """Read every KSM attribute under `sysfs_root`, opening each file afresh; never raises."""
    directory = ksm_dir(sysfs_root)
    if not os.path.isdir(directory):
        return SysfsReading(KsmSysfs(available=False))  # no KSM in this kernel: not an error
    if not os.access(directory, os.R_OK | os.X_OK):
        return SysfsReading(KsmSysfs(available=False), (Problem(directory, "", "not readable"),))
    return _snapshot(directory, _opened_afresh(directory), declared)


def _opened_afresh(directory: str) -> Callable[[str], bytes | None]:
    return lambda name: read_bytes(os.path.join(directory, name))


def _parse_files(
    directory: str,
    content_of: Callable[[str], bytes | None],
    names: tuple[str, ...],
    declared: Declared,
) -> tuple[dict[str, int], AdvisorMode | None, list[Problem]]:
    """Each named file's parsed value; `content_of` returns None for an absent file."""
    values: dict[str, int] = {}
    advisor_mode: AdvisorMode | None = None
    problems: list[Problem] = []
    for name in names:
        value, problem = parse_attribute(directory, name, content_of, declared)
        if problem is not None:
            problems.append(problem)
        elif isinstance(value, AdvisorMode):
            advisor_mode = value
        elif isinstance(value, int):
            values[name] = value
    return values, advisor_mode, problems


def _unreadable(problems: list[Problem]) -> frozenset[str]:
    return frozenset(os.path.basename(p.path) for p in problems)


def _snapshot(
    directory: str, content_of: Callable[[str], bytes | None], declared: Declared
) -> SysfsReading:
    """Every declared file, parsed."""
    values, advisor_mode, problems = _parse_files(directory, content_of, declared.names, declared)
    snapshot = KsmSysfs(
        True, unreadable=_unreadable(problems), advisor_mode=advisor_mode, values=values
    )
    return SysfsReading(snapshot, tuple(problems))


def parse_attribute(
    directory: str, name: str, content_of: Callable[[str], bytes | None], declared: Declared
) -> tuple[object | None, Problem | None]:
    """One KSM file's parsed value (None when absent), or the problem with it; never raises."""
    raw: bytes | None = None
    try:
        raw = content_of(name)
        return (None if raw is None else parser_of(name, declared)(raw)), None
    except OSError as err:
        return None, Problem(os.path.join(directory, name), "", os_error_reason(err))
    except BadValue as err:
        return None, Problem(os.path.join(directory, name), show_value(raw or b""), str(err))


def read_numbers(
    sysfs_root: str, names: tuple[str, ...], declared: Declared = DECLARED
) -> KsmSysfs:
    """Only the named number files, opened afresh, for the background sampler."""
    directory = ksm_dir(sysfs_root)
    content_of = _opened_afresh(directory)
    values, _mode, problems = _parse_files(directory, content_of, names, declared)
    return KsmSysfs(bool(values), unreadable=_unreadable(problems), values=values)


class HeldKsmSysfs:
    """Reads the KSM attributes through descriptors held open from one scrape to the next.

    Opening a sysfs file costs several times more than reading it, and sysfs renders an
    attribute afresh on every read from offset 0, so a held descriptor gives current values.
    The descriptors are dropped, and the files opened afresh, whenever the directory's
    identity or metadata changes (replaced, removed, chmod, an entry added or removed) or a
    read fails: faults and their recovery show on the next scrape as they would with fresh
    opens. While any file cannot be opened, every scrape opens afresh.
    """

    def __init__(self, sysfs_root: str, declared: Declared = DECLARED) -> None:
        self.sysfs_root = sysfs_root
        self.declared = declared
        self.directory = ksm_dir(sysfs_root)
        self._held: dict[str, int | None] = {}  # name -> descriptor, None where absent
        self._identity: tuple[int, ...] | None = None
        # A reader dropped without close() still gives its descriptors back.
        weakref.finalize(self, close_all, self._held)

    def read(self) -> SysfsReading:
        try:
            identity = _identity(os.stat(self.directory))
        except OSError:
            identity = None
        if identity is None or identity != self._identity:
            self.close()
            reading = read_ksm_sysfs(self.sysfs_root, self.declared)
            if identity is not None and reading.snapshot.available:
                self._hold(identity)
            return reading
        return _snapshot(self.directory, self._pread, self.declared)

    def _hold(self, identity: tuple[int, ...]) -> None:
        try:
            for name in self.declared.names:
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
        close_all(self._held)
        self._identity = None


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

"""`<procfs>/meminfo`: the memory figures the exporter and `status` use, parsed by one rule.

A line is `Name: N kB` (or `Name: N`, the unit-less counters); fs/proc/meminfo.c writes every
size in kB. MemTotal is the denominator of the saved-memory ratio; MemFree + Buffers + Cached
is free memory as ksmtuned and oVirt MOM count it, and MemAvailable is what KubeVirt's
handler counts, for `status` to show what they would set.
A missing or garbled figure is None, never 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from ksm_exporter.sources.kernel_file import KIB, Problem, os_error_reason, read_bytes

_UNITS = {b"kB": KIB, b"": 1}
FREE_FIELDS = ("MemFree", "Buffers", "Cached")
WANTED = frozenset(name.encode() for name in ("MemTotal", "MemAvailable", *FREE_FIELDS))


@dataclass(frozen=True, slots=True)
class Meminfo:
    """The figures of one read of meminfo, in bytes; None where absent or garbled."""

    mem_total_bytes: int | None = None
    free_bytes: int | None = None  # MemFree + Buffers + Cached
    available_bytes: int | None = None  # MemAvailable (since Linux 3.14)


@dataclass(frozen=True, slots=True)
class MeminfoReading:
    meminfo: Meminfo
    problems: tuple[Problem, ...] = ()

    @property
    def mem_total_bytes(self) -> int | None:
        return self.meminfo.mem_total_bytes


def parse_sizes(
    raw: bytes, wanted: frozenset[bytes] | None = None
) -> tuple[dict[str, int], dict[str, bytes]]:
    """({name: bytes} of the lines that parse, {name: content} of those that do not).

    With `wanted`, only those lines, and the reading stops once each has been seen: meminfo
    is parsed on every scrape, and its first five lines are all the exporter needs of ~55.
    """
    sizes: dict[str, int] = {}
    garbled: dict[str, bytes] = {}
    left = len(wanted) if wanted is not None else -1
    for line in raw.split(b"\n"):
        name, sep, rest = line.partition(b":")
        if not sep or (wanted is not None and name not in wanted):
            continue
        key = name.decode("ascii", errors="replace")
        parts = rest.split()
        unit = parts[1] if len(parts) == 2 else b""
        if 1 <= len(parts) <= 2 and parts[0].isdigit() and unit in _UNITS:
            sizes[key] = int(parts[0]) * _UNITS[unit]
        else:
            garbled[key] = b" ".join(parts)
        left -= 1
        if left == 0:
            break
    return sizes, garbled


def parse_meminfo(raw: bytes, path: str) -> MeminfoReading:
    sizes, garbled = parse_sizes(raw, WANTED)
    free = None
    if all(name in sizes for name in FREE_FIELDS):
        free = sum(sizes[name] for name in FREE_FIELDS)
    total = sizes.get("MemTotal")
    problems: tuple[Problem, ...] = ()
    if "MemTotal" in garbled or total == 0:
        shown = garbled.get("MemTotal", b"0 kB").decode("ascii", errors="replace")[:64]
        problems = (Problem(path, shown, "MemTotal is not a size"),)
        total = None
    elif total is None:
        problems = (Problem(path, "", "no MemTotal line"),)
    return MeminfoReading(Meminfo(total, free, sizes.get("MemAvailable")), problems)


def read_meminfo(path: str) -> MeminfoReading:
    """Never raises; a missing file is no problem (a procfs without it), just no figures."""
    try:
        raw = read_bytes(path)
    except OSError as err:
        return MeminfoReading(Meminfo(), (Problem(path, "", os_error_reason(err)),))
    if raw is None:
        return MeminfoReading(Meminfo())
    return parse_meminfo(raw, path)

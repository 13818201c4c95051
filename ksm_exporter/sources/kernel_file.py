"""Reading and parsing small kernel files without ever raising on what the kernel hands us."""

from __future__ import annotations

import errno
import os
from collections.abc import MutableMapping
from dataclasses import dataclass

# sysfs and procfs attributes fit in one page; read a little more to notice garbage.
READ_LIMIT = 65536
_UINT64_MAX = 2**64 - 1
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
# errno of a read under <procfs>/<pid>/ when the process exited meanwhile
PID_VANISHED = (errno.ENOENT, errno.ESRCH)
NANOSECONDS = 1_000_000_000  # schedstat's unit, per second
KIB = 1024  # meminfo's "kB"


@dataclass(frozen=True, slots=True)
class Problem:
    """A kernel file that could not be used: which file, what it held, and why."""

    path: str
    value: str
    reason: str


class BadValue(ValueError):
    """A file's content that does not parse as the value the kernel documents."""


def read_bytes(path: str) -> bytes | None:
    """Return the file's content, or None when it does not exist.

    Any other OSError (permission, a directory in the file's place, I/O) propagates so the
    caller can report it as a problem with the file.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        return os.read(fd, READ_LIMIT)
    finally:
        os.close(fd)


def decode(raw: bytes) -> str:
    try:
        return raw.decode("ascii").strip()
    except UnicodeDecodeError as err:
        raise BadValue("not ASCII text") from err


def parse_unsigned(raw: bytes) -> int:
    text = decode(raw)
    if not text.isdigit():
        raise BadValue("not an unsigned integer")
    value = int(text)
    if value > _UINT64_MAX:
        raise BadValue("beyond 64 bits")
    if value > _INT64_MAX:  # the kernel's counters are signed longs: 2^64-1 is a count below 0
        raise BadValue("a negative count printed as unsigned")
    return value


def parse_signed(raw: bytes) -> int:
    text = decode(raw)
    digits = text[1:] if text[:1] in "+-" else text
    if not digits.isdigit():
        raise BadValue("not an integer")
    value = int(text)
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise BadValue("beyond 64 bits")
    return value


def show_value(raw: bytes) -> str:
    """A short, printable rendering of bad content for a log line."""
    shown = raw[:64].decode("ascii", errors="backslashreplace").strip()
    return shown + ("..." if len(raw) > 64 else "")


def os_error_reason(err: OSError) -> str:
    name = errno.errorcode.get(err.errno or 0, "error")
    return f"{name}: {err.strerror or err}"


def close_all(held: MutableMapping[str, int | None] | MutableMapping[bytes, int]) -> None:
    """Close every descriptor a reader holds open and forget them."""
    while held:
        fd = held.popitem()[1]
        if fd is not None:
            os.close(fd)

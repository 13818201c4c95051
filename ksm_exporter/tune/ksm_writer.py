"""The only code of the project that writes to sysfs: KSM's own settings, nothing else."""

from __future__ import annotations

import os

from ksm_exporter.sources.sysfs import ksm_dir

WRITABLE = frozenset({"run", "pages_to_scan", "advisor_mode"})


class KsmWriteError(Exception):
    """A setting could not be written: the one line the tuner exits with."""


class KsmWriter:
    def __init__(self, sysfs_root: str) -> None:
        self.directory = ksm_dir(sysfs_root)

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def write(self, name: str, value: int | str) -> None:
        if name not in WRITABLE:
            raise KsmWriteError(f"{name} is not a setting the tuner changes")
        try:
            with open(self.path(name), "w") as file:
                file.write(f"{value}\n")
        except OSError as err:
            raise KsmWriteError(f"cannot write {value} to {self.path(name)}: {err}") from err

    def cannot_write(self) -> str | None:
        """Why the settings cannot be written (read-only sysfs, not root), None if they can."""
        for name in ("run", "pages_to_scan"):
            path = self.path(name)
            if not os.access(path, os.W_OK):
                return f"cannot write {path}: sysfs is read-only here, or this user is not root"
        return None

"""Every process's command name, `<procfs>/<pid>/comm`, in one walk: what the other tuners'
rules look for (QEMU for ksmtuned and oVirt MOM, the tuners themselves), read once for all of
them.

A walk reads a file of every process, as dear as the per-process sweep: paths are opened
relative to the procfs directory (`openat()`), which spares the kernel the walk of
`<procfs>` for each one (path_openat() in fs/namei.c starts from the directory's dentry).
"""

from __future__ import annotations

import os

_FLAGS = os.O_RDONLY | os.O_CLOEXEC
_COMM_SIZE = 64  # more than a command name (TASK_COMM_LEN, 16 with its NUL) and a newline


def read_process_names(procfs_root: str) -> dict[int, bytes] | None:
    """{pid: comm, stripped}, or None where `procfs_root` cannot be listed; a process that
    vanishes or whose comm cannot be read is left out. Never raises."""
    try:
        root = os.open(procfs_root, _FLAGS | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        entries = os.listdir(root)
        names: dict[int, bytes] = {}
        for entry in entries:
            if not entry.isdigit():
                continue
            try:
                fd = os.open(f"{entry}/comm", _FLAGS, dir_fd=root)
            except OSError:  # vanished, or not ours to read
                continue
            try:
                names[int(entry)] = os.read(fd, _COMM_SIZE).strip()
            except OSError:
                continue
            finally:
                os.close(fd)
        return names
    except OSError:
        return None
    finally:
        os.close(root)

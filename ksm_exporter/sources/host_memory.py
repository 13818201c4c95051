"""The QEMU processes ksmtuned and oVirt MOM count as memory committed to guests, for `status`
to show what they would set (their free memory is sources/meminfo.py's `free_bytes`).

Both find QEMU with `pgrep` and size it with `ps`: MOM takes `pgrep qemu` (the pattern
anywhere in the command name) and sums `ps -o vsz` (mom/Collectors/HostKSM.py,
`get_shareable_mem()`); Debian's ksmtuned takes `pgrep -f '^qemu-system.*-enable-kvm'` (the
whole command line) and sums `ps -o rsz` (`committed_memory()`). procps 4 takes both from
`<pid>/status`, as here: VmSize (total_vm) and VmRSS, in kB (task_mem() in
fs/proc/task_mmu.c; stat's rss is a per-CPU approximation, off by up to a batch a CPU).
Every process whose command name holds "qemu" is read, with its command line: a QEMU that
renamed itself (`-name ...,process=`) is missed here, as MOM misses it. Under a procfs
mounted with a hiding `hidepid=`, a reader without CAP_SYS_PTRACE (has_pid_permissions() in
fs/proc/base.c) cannot tell whether it sees every QEMU: the list is then unknown.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from ksm_exporter.sources.kernel_file import read_bytes
from ksm_exporter.sources.meminfo import parse_sizes
from ksm_exporter.sources.process_names import read_process_names
from ksm_exporter.sources.procfs_mount import read_hidepid

QEMU_IN_COMM = "qemu"  # MOM's `pgrep qemu`
QEMU_IN_NAME = QEMU_IN_COMM.encode()


@dataclass(frozen=True, slots=True)
class QemuProcess:
    pid: int
    comm: str
    command_line: str  # the arguments joined by spaces, as `pgrep -f` matches them
    virtual_bytes: int  # ps's vsz
    resident_bytes: int  # ps's rss (rsz)


def read_qemu_process(procfs_root: str, pid: int) -> QemuProcess | None:
    """The process if it is still named like QEMU and has memory; raises OSError where it
    vanished or cannot be read."""
    directory = os.path.join(procfs_root, str(pid))
    raw_comm = read_bytes(os.path.join(directory, "comm"))
    if raw_comm is None:
        return None
    comm = raw_comm.strip().decode("utf-8", errors="replace")
    if QEMU_IN_COMM not in comm:
        return None
    status = read_bytes(os.path.join(directory, "status"))
    if status is None:
        return None
    sizes, _garbled = parse_sizes(status)
    cmdline = read_bytes(os.path.join(directory, "cmdline"))
    if cmdline is None or "VmSize" not in sizes or "VmRSS" not in sizes:
        return None  # a kernel thread or a zombie: no memory
    arguments = cmdline.rstrip(b"\0").replace(b"\0", b" ").decode("utf-8", errors="replace")
    return QemuProcess(pid, comm, arguments, sizes["VmSize"], sizes["VmRSS"])


def read_qemu_processes(
    procfs_root: str, sees_hidden: bool = False
) -> tuple[QemuProcess, ...] | None:
    """Every process named like QEMU, or None where `procfs_root` cannot be listed or may
    hide some (`sees_hidden`: this reader is root); a process that vanishes or whose files
    cannot be read is left out. Never raises."""
    return qemu_processes_among(procfs_root, read_process_names(procfs_root), sees_hidden)


def qemu_processes_among(
    procfs_root: str, names: Mapping[int, bytes] | None, sees_hidden: bool = False
) -> tuple[QemuProcess, ...] | None:
    """As `read_qemu_processes`, from the command names of a walk already made (None where
    it could not list `procfs_root`): status and cmdline, which the kernel builds line by
    line, are read only for the few whose name matches."""
    if names is None or (not sees_hidden and read_hidepid(procfs_root) is not None):
        return None
    found = []
    for pid in sorted(pid for pid, name in names.items() if QEMU_IN_NAME in name):
        try:
            process = read_qemu_process(procfs_root, pid)
        except OSError:  # vanished, or not ours to read
            continue
        if process is not None:
            found.append(process)
    return tuple(found)

"""The per-process part of a collection: sweep, select, attribute."""

from __future__ import annotations

import logging
import os
import re
import resource
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ksm_exporter.derive.process_selection import (
    ProcessReading,
    always_included,
    select_processes,
)
from ksm_exporter.sources.ksm_stat import PROCESS_FIELDS, ProcessField
from ksm_exporter.sources.process_identity import (
    LABELS,
    PROCESS_LABELS,
    ProcessIdentity,
    ProcessLabel,
    read_identity,
)
from ksm_exporter.sources.process_sweep import ProcessSweeper
from ksm_exporter.sources.procfs_mount import hidepid_sentence, read_hidepid

log = logging.getLogger(__name__)

_MAX_SWEEP_THREADS = 4
_MAX_KEPT_FILES = 1024  # at about 4.5 KiB of kernel memory each: 4.5 MiB at most
_SPARE_FILES = 256  # descriptors left for sockets, sysfs and the per-scrape reads


def open_files_budget() -> int:
    """How many ksm_stat files the sweep may keep open under the current soft RLIMIT_NOFILE
    (which the command line raises to the hard limit at start)."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return _MAX_KEPT_FILES
    return max(0, min(_MAX_KEPT_FILES, soft - _SPARE_FILES))


@dataclass(frozen=True, slots=True)
class ProcessOptions:
    enabled: bool = True
    limit: int = 100
    labels: tuple[str, ...] = PROCESS_LABELS
    always_include: re.Pattern[str] | None = None


def sweep_threads() -> int:
    """One per usable CPU, a few at most: the kernel's work runs in parallel without the GIL."""
    return min(len(os.sched_getaffinity(0)), _MAX_SWEEP_THREADS)


class ProcessReader:
    """Sweeps procfs, selects the processes with series of their own, and names them;
    `collector.process_families` renders what it read."""

    def __init__(
        self,
        procfs_root: str,
        options: ProcessOptions,
        fields: tuple[ProcessField, ...] = PROCESS_FIELDS,
        labels: tuple[ProcessLabel, ...] = LABELS,
    ) -> None:
        self.procfs_root = procfs_root
        self.options = options
        self.fields = fields
        self.labels = labels
        threads = sweep_threads()
        self._helpers = (
            ThreadPoolExecutor(threads - 1, thread_name_prefix="ksm-sweep") if threads > 1 else None
        )
        self.sweeper = ProcessSweeper(
            procfs_root, self._helpers, threads, open_files_budget(), fields
        )
        self._warned_unreadable = False
        hidepid = read_hidepid(procfs_root)
        if hidepid is not None:
            log.warning(hidepid_sentence(procfs_root, hidepid))

    def read(self) -> ProcessReading:
        """Runs off the event loop: thousands of small reads."""
        sweep = self.sweeper.sweep()
        self._note_unreadable(sweep.unreadable)
        options = self.options
        identities: dict[int, ProcessIdentity] = {}
        if options.always_include is not None:
            identities = {
                p.pid: read_identity(self.procfs_root, p.pid, labels=self.labels)
                for p in sweep.registered
            }
        always = always_included(identities, options.always_include)
        selection = select_processes(sweep.registered, options.limit, always)
        wanted = options.labels
        for process in selection.own:
            if process.pid not in identities:  # even without labels: the guest's size
                identities[process.pid] = read_identity(
                    self.procfs_root, process.pid, wanted, self.labels
                )
        return ProcessReading(sweep, selection, identities)

    def _note_unreadable(self, unreadable: int) -> None:
        """One line when processes become unreadable and one when they no longer are."""
        if unreadable and not self._warned_unreadable:
            log.warning(
                "cannot read the KSM counters of other users' processes: "
                "run as root or grant CAP_DAC_READ_SEARCH",
                extra={"unreadable_processes": unreadable, "procfs": self.procfs_root},
            )
        elif not unreadable and self._warned_unreadable:
            log.info("every process's KSM counters are readable again")
        self._warned_unreadable = bool(unreadable)

    def close(self) -> None:
        self.sweeper.close()
        if self._helpers is not None:
            self._helpers.shutdown(wait=False)

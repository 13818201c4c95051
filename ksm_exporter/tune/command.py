"""Start-up checks of `ksm-exporter tune`, its loop, and how it ends.

Exit statuses: 0 on SIGTERM or SIGINT (the settings are left as they are then), 1 where it
cannot start (no KSM, settings not writable, another tuner running, a write refused),
EXIT_OVERRIDDEN where someone else wrote a setting while it ran: it changed nothing after
that write, and a service manager should not start it again over the operator's choice.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType

from ksm_exporter.derive.tuning import TuningOptions
from ksm_exporter.sources.rival_tuners import running_rivals
from ksm_exporter.sources.roots import Roots
from ksm_exporter.sources.sysfs import ksm_dir, read_ksm_sysfs
from ksm_exporter.tune.ksm_writer import KsmWriteError, KsmWriter
from ksm_exporter.tune.state_file import StateFile
from ksm_exporter.tune.tuner import EXIT_OVERRIDDEN, Overridden, Tuner

log = logging.getLogger("ksm_exporter.tune")


class CannotTune(Exception):
    """The one line the tuner refuses to start with."""


def check_start(roots: Roots, writer: KsmWriter, *, dry_run: bool, take_over: bool) -> None:
    """Raises CannotTune, having written nothing, where the tuner must not start."""
    ksm = read_ksm_sysfs(roots.sysfs).snapshot
    if not ksm.available or ksm.run is None:
        raise CannotTune(f"this kernel has no KSM: {ksm_dir(roots.sysfs)} cannot be read")
    if not dry_run and (reason := writer.cannot_write()):
        raise CannotTune(reason)
    rivals = running_rivals(roots.procfs)
    if rivals:
        pid, name = rivals[0]
        raise CannotTune(
            f"{name} (pid {pid}) tunes KSM already: stop it first, two tuners undo each other"
        )
    advisor = ksm.advisor_mode
    if take_over and advisor is None:
        raise CannotTune(
            "--take-over: this kernel has no advisor_mode "
            "(the scan-time advisor, since 6.8): there is no advisor to take over from"
        )
    if advisor is not None and advisor.active == "scan-time":
        if dry_run and not take_over:
            log.info(
                "the kernel's scan-time advisor tunes pages_to_scan (advisor_mode=scan-time): "
                "this dry run says what the tuner would set instead, and tells the advisor's "
                "writes from anyone else's"
            )
            return
        if not take_over:
            raise CannotTune(
                "the kernel's scan-time advisor tunes pages_to_scan (advisor_mode=scan-time): "
                "pass --take-over to switch it off and tune instead"
            )
        if not dry_run:
            writer.write("advisor_mode", "none")
        log.info(
            "took over from the kernel's scan-time advisor",
            extra={"setting": "advisor_mode", "from": "scan-time", "to": "none"},
        )


def tune(
    roots: Roots,
    options: TuningOptions,
    *,
    dry_run: bool = False,
    take_over: bool = False,
    interval: float = 1.0,
    state_file: str | None = None,
) -> int:
    writer = KsmWriter(roots.sysfs)
    try:
        check_start(roots, writer, dry_run=dry_run, take_over=take_over)
    except (CannotTune, KsmWriteError) as err:
        print(f"ksm-exporter tune: {err}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    state = StateFile(state_file) if state_file else None
    tuner = Tuner(roots, options, dry_run=dry_run, writer=writer, state_file=state)
    log.info(
        "tuning KSM",
        extra={
            "dry_run": dry_run,
            "cpu_budget": options.cpu_budget,
            "steady_full_scan_seconds": options.steady_full_scan_seconds,
            "pressure_cpu_budget": options.pressure_cpu_budget,
            "state_file": None if dry_run else state_file,
            "pid": os.getpid(),
        },
    )
    tuner.save(force=True)
    try:
        tuner.run(stop, interval)
    except Overridden as err:
        log.warning("someone else changed KSM's settings: this tuner stops", extra={"err": err})
        tuner.save(force=True, state="overridden", why=str(err))
        return EXIT_OVERRIDDEN
    except KsmWriteError as err:
        print(f"ksm-exporter tune: {err}", file=sys.stderr)
        tuner.save(force=True, state="failed", why=str(err))
        return 1
    finally:
        tuner.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("stopped; the settings stay as they are", extra={"changes": len(tuner.changes)})
    tuner.save(force=True, state="stopped", why="told to stop (SIGTERM or SIGINT)")
    return 0

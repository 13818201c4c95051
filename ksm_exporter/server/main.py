"""The serving exporter: from the typed settings and the loaded web configuration to a
listening server, in the process the command line started."""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os

from ksm_exporter import __version__
from ksm_exporter.collector.collection import KsmCollection
from ksm_exporter.config import ListenAddress, Settings
from ksm_exporter.privileges import make_effective
from ksm_exporter.reading.host_reader import HostReader
from ksm_exporter.reading.processes import ProcessOptions
from ksm_exporter.server.app import make_app
from ksm_exporter.server.limits import raise_open_files_limit
from ksm_exporter.server.run import run
from ksm_exporter.server.sharing_audit import SharingAuditor
from ksm_exporter.server.web_config_reload import FollowedWebConfig
from ksm_exporter.sources.roots import Roots

log = logging.getLogger("ksm_exporter")

PR_SET_NAME = 15


def name_process(name: str) -> None:
    """The name `ps`, `top` and `pgrep -x` show (the kernel's comm), which would otherwise be
    the interpreter's; threads started later inherit it."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_NAME, name.encode()[:15], 0, 0, 0)


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # noqa: PLC0415 - optional, faster event loop where installed
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def process_options(settings: Settings) -> ProcessOptions:
    return ProcessOptions(
        enabled=settings.collector_process,
        limit=settings.collector_process_limit,
        labels=settings.process_labels,
        always_include=settings.process_always_include,
    )


def sharing_auditor(settings: Settings) -> SharingAuditor | None:
    """The opt-in sharing collector, on a thread of its own; None unless asked for."""
    if not settings.collector_sharing:
        return None
    return SharingAuditor(
        Roots(settings.path_sysfs, settings.path_procfs),
        settings.sharing_tenant_key,
        settings.collector_sharing_interval,
        settings.collector_sharing_tenants,
        settings.collector_sharing_pairs,
    )


def serve(settings: Settings, web_config: FollowedWebConfig | None) -> int:
    """Serves until SIGTERM or SIGINT (0), or 1 when the address cannot be bound."""
    name_process("ksm-exporter")  # `python -m ksm_exporter` too
    # Before any thread starts: threads inherit the capability from this one.
    reads_any_process = make_effective()
    open_files_limit = raise_open_files_limit()  # before the sweep sizes its budget by it
    host, port = ListenAddress.split(settings.web_listen_address)
    reader = HostReader(
        Roots(settings.path_sysfs, settings.path_procfs),
        processes=process_options(settings),
        sample_interval=settings.collector_sample_interval,
        tuner_state_file=settings.tuning_state_file or None,
    )
    collection = KsmCollection(reader, settings.tuning)
    ssl_context = web_config.listening_context() if web_config else None
    sharing = sharing_auditor(settings)
    extra_families = [
        *([web_config.families] if web_config else []),
        *([sharing.families] if sharing else []),
    ]
    app = make_app(
        collection,
        settings.web_telemetry_path,
        web_config,
        lambda: [family for families in extra_families for family in families()],
        sharing.seen if sharing else lambda: None,
    )
    log.info(
        "starting ksm-exporter",
        extra={
            "version": __version__,
            "address": settings.web_listen_address,
            "tls": ssl_context is not None,
            "basic_auth": bool(web_config and web_config.current.auth),
            "uid": os.getuid(),
            "cap_dac_read_search": reads_any_process,
            "open_files_limit": open_files_limit,
        },
    )
    if sharing:
        sharing.start()
    try:
        run(
            app,
            host=host,
            port=port,
            ssl_context=ssl_context,
            idle_timeout=settings.web_idle_timeout,
            loop=new_event_loop(),
        )
    except OSError as err:
        log.error("cannot listen", extra={"address": settings.web_listen_address, "err": err})
        return 1
    finally:
        if sharing:
            sharing.stop()
    return 0

"""Command line: `ksm-exporter [flags]` serves metrics."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import ssl
import sys
from collections.abc import Iterable, Sequence
from typing import NoReturn

from aiohttp import web
from pydantic import ValidationError

from ksm_exporter import __version__
from ksm_exporter.collector.collection import KsmCollection
from ksm_exporter.collector.processes import ProcessOptions
from ksm_exporter.config import ListenAddress, Settings, env_of, flag_of
from ksm_exporter.logs import configure_logging
from ksm_exporter.privileges import make_effective
from ksm_exporter.server.app import make_app
from ksm_exporter.server.basic_auth import BasicAuth
from ksm_exporter.server.limits import raise_open_files_limit
from ksm_exporter.server.web_config import WebConfig, WebConfigError, load_web_config
from ksm_exporter.sources.roots import Roots
from ksm_exporter.status.render import render_json, render_text
from ksm_exporter.status.snapshot import KsmUnreadable, take_snapshot

log = logging.getLogger("ksm_exporter")

EXIT_USAGE = 2


# The settings `status` shares with the server: where the kernel's filesystems are, and what
# the tuning advice grants ksmd.
STATUS_SETTINGS = (
    "path_sysfs",
    "path_procfs",
    "tuning_cpu_budget",
    "tuning_steady_full_scan_seconds",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ksm-exporter",
        description="Prometheus exporter for Linux Kernel Samepage Merging (KSM).",
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("--version", action="version", version=f"ksm-exporter {__version__}")
    add_setting_flags(parser, Settings.model_fields)
    commands = parser.add_subparsers(dest="command", metavar="{status}")
    status = commands.add_parser(
        "status",
        help="print one snapshot of KSM on this host and exit",
        description="One snapshot of KSM on this host: state, savings, ksmd CPU, top processes.",
        argument_default=argparse.SUPPRESS,
    )
    status.add_argument("--json", action="store_true", help="JSON for scripts")
    status.add_argument(
        "--window",
        type=float,
        metavar="SECONDS",
        help="how long to watch ksmd's CPU time and full_scans (default: 1, at most 60)",
    )
    status.add_argument(
        "--top", type=int, metavar="N", help="processes to list (default: 10, 0 for none)"
    )
    add_setting_flags(status, STATUS_SETTINGS)
    return parser


def add_setting_flags(parser: argparse.ArgumentParser, names: Iterable[str]) -> None:
    for name in names:
        field = Settings.model_fields[name]
        default = field.get_default()
        choices = getattr(field.annotation, "__args__", None)
        help_text = f"{field.description} [env {env_of(name)}] (default: {default})"
        if field.annotation is bool:
            parser.add_argument(
                f"--{flag_of(name)}",
                dest=name,
                action=argparse.BooleanOptionalAction,
                help=help_text,
            )
        else:
            parser.add_argument(
                f"--{flag_of(name)}",
                dest=name,
                metavar="VALUE",
                help=help_text,
                choices=choices if choices and all(isinstance(c, str) for c in choices) else None,
            )


def load_settings(args: argparse.Namespace) -> Settings:
    """Flags override environment variables, which override defaults."""
    try:
        return Settings(**{k: v for k, v in vars(args).items() if k in Settings.model_fields})
    except ValidationError as err:
        first = err.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else ""
        usage_error(name, first["msg"].removeprefix("Value error, "))


def load_web(settings: Settings) -> tuple[WebConfig, ssl.SSLContext | None]:
    """No file: plain HTTP without auth. A file that cannot be used stops start-up."""
    if not settings.web_config_file:
        return WebConfig(), None
    try:
        return load_web_config(settings.web_config_file)
    except WebConfigError as err:
        usage_error("web_config_file", str(err))


def usage_error(name: str, message: str) -> NoReturn:
    """One line naming the flag and its environment variable, then exit status 2."""
    where = f"--{flag_of(name)} / {env_of(name)}" if name in Settings.model_fields else name
    print(f"ksm-exporter: invalid {where}: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


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


def serve(settings: Settings, web_config: WebConfig, ssl_context: ssl.SSLContext | None) -> None:
    # Before any thread starts: threads inherit the capability from this one.
    reads_any_process = make_effective()
    open_files_limit = raise_open_files_limit()  # before the sweep sizes its budget by it
    host, port = ListenAddress.split(settings.web_listen_address)
    collection = KsmCollection(
        Roots(settings.path_sysfs, settings.path_procfs),
        processes=process_options(settings),
        sample_interval=settings.collector_sample_interval,
        tuning=settings.tuning,
    )
    users = web_config.basic_auth_users
    app = make_app(collection, settings.web_telemetry_path, BasicAuth(users) if users else None)
    log.info(
        "starting ksm-exporter",
        extra={
            "version": __version__,
            "address": settings.web_listen_address,
            "tls": ssl_context is not None,
            "basic_auth": bool(users),
            "uid": os.getuid(),
            "cap_dac_read_search": reads_any_process,
            "open_files_limit": open_files_limit,
        },
    )
    web.run_app(
        app,
        host=host,
        port=port,
        ssl_context=ssl_context,
        print=None,
        access_log=None,
        keepalive_timeout=settings.web_idle_timeout,
        loop=new_event_loop(),
    )


def status(args: argparse.Namespace, settings: Settings) -> int:
    window: float = getattr(args, "window", 1.0)
    top: int = getattr(args, "top", 10)
    if not 0.1 <= window <= 60:
        usage_error("--window", "must be between 0.1 and 60 seconds")
    if not 0 <= top <= 1000:
        usage_error("--top", "must be between 0 and 1000")
    make_effective()  # other users' processes, where the capability is permitted
    try:
        roots = Roots(settings.path_sysfs, settings.path_procfs)
        snapshot = take_snapshot(roots, window, top, tuning=settings.tuning)
    except KsmUnreadable as err:
        print(f"ksm-exporter status: {err}", file=sys.stderr)
        return 1
    print(render_json(snapshot) if getattr(args, "json", False) else render_text(snapshot), end="")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = load_settings(args)
    if getattr(args, "command", None) == "status":
        # The snapshot lists the files it could not use; log lines would say it twice.
        configure_logging("error", settings.log_format)
        return status(args, settings)
    configure_logging(settings.log_level, settings.log_format)
    web_config, ssl_context = load_web(settings)
    try:
        serve(settings, web_config, ssl_context)
    except OSError as err:
        log.error("cannot listen", extra={"address": settings.web_listen_address, "err": err})
        return 1
    return 0

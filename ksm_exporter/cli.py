"""Command line: `ksm-exporter [flags]` serves metrics; `ksm-exporter status` prints one
snapshot; `ksm-exporter tune` applies the tuning advice (the only command that writes);
`ksm-exporter audit` tells who shares KSM pages with whom (read-only, as root).

argparse parses the flags and pydantic-settings validates them together with the
environment variables (a flag wins over its variable) into the one typed `Settings`. Flags
come in named groups (`add_setting_groups`), so a subcommand takes the groups it shares with
the server, e.g. `path` and `tuning`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Sequence
from typing import NoReturn

from pydantic import ValidationError

from ksm_exporter import __version__
from ksm_exporter.audit.command import audit as run_audit
from ksm_exporter.audit.model import seen_of, take_audit
from ksm_exporter.config import Settings, env_of, flag_of, group_of
from ksm_exporter.derive.tenants import BadTenantKey, parse_tenant_key
from ksm_exporter.logs import configure_logging
from ksm_exporter.privileges import make_effective
from ksm_exporter.server.main import process_options, serve
from ksm_exporter.server.web_config import WebConfigError
from ksm_exporter.server.web_config_reload import FollowedWebConfig
from ksm_exporter.sources.roots import Roots
from ksm_exporter.status.build import build_status
from ksm_exporter.status.render import render_json, render_text
from ksm_exporter.status.snapshot import KsmUnreadable, take_snapshot
from ksm_exporter.status.why import answer_why, render_why
from ksm_exporter.tune.command import tune as run_tuner

EXIT_USAGE = 2

SERVER_GROUPS = ("web", "path", "collector", "tuning", "log")
# What `status` shares with the server: where the kernel's filesystems are, and what the
# tuning advice grants ksmd.
STATUS_GROUPS = ("path", "tuning")
# The tuner reads the host as the server does, follows the same advice, and logs.
TUNE_GROUPS = ("path", "tuning", "log")
AUDIT_GROUPS = ("path",)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ksm-exporter",
        description="Prometheus exporter for Linux Kernel Samepage Merging (KSM).",
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("--version", action="version", version=f"ksm-exporter {__version__}")
    add_setting_groups(parser, *SERVER_GROUPS)
    commands = parser.add_subparsers(dest="command", metavar="{status,tune,audit}")
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
        "--why",
        metavar="PID|VM",
        help="why a process, or a QEMU guest by name, merges little: each check with its "
        "evidence, up to the first cause that holds",
    )
    status.add_argument(
        "--top", type=int, metavar="N", help="processes to list (default: 10, 0 for none)"
    )
    status.add_argument(
        "--sharing",
        nargs="?",
        const="vm",
        metavar="KEY",
        help="also audit who shares KSM pages with whom, tenants by KEY (default: vm; as "
        "`audit --tenant-by`); needs root with CAP_SYS_ADMIN",
    )
    add_setting_groups(status, *STATUS_GROUPS)
    tune = commands.add_parser(
        "tune",
        help="apply the tuning advice to pages_to_scan (and run) until stopped",
        description="Applies the tuning advice to KSM's settings in bounded steps, within the "
        "CPU budget. Refuses to run beside ksmtuned, oVirt MOM, KubeVirt's virt-handler or the "
        "kernel's scan-time advisor; stops once someone else writes a setting (exit status 3); "
        "SIGTERM ends it with status 0, leaving the settings as they are.",
        argument_default=argparse.SUPPRESS,
    )
    tune.add_argument(
        "--dry-run", action="store_true", help="log each change it would make; write nothing"
    )
    tune.add_argument(
        "--take-over",
        action="store_true",
        help="switch the kernel's scan-time advisor off (advisor_mode=none) and tune instead",
    )
    tune.add_argument(
        "--interval",
        type=float,
        metavar="SECONDS",
        help="seconds between readings of the host (default: 1, from 0.1 to 60)",
    )
    add_setting_groups(tune, *TUNE_GROUPS)
    add_audit_parser(commands)
    return parser


def add_audit_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = commands.add_parser(
        "audit",
        help="who shares KSM pages with whom (read-only; needs root with CAP_SYS_ADMIN)",
        description="Reads the KSM frames every registered process maps (pagemap, kpageflags) "
        "and tells, per tenant, its KSM pages shared within itself and with other tenants, the "
        "pages each pair of tenants shares, and the saving isolating a tenant would give up. "
        "Needs CAP_SYS_ADMIN, without which the kernel hides every physical frame.",
        argument_default=argparse.SUPPRESS,
    )
    audit.add_argument(
        "--tenant-by",
        metavar="KEY",
        help="vm, namespace, uid, unit, cgroup, cgroup:DEPTH or cgroup:REGEX (default: vm)",
    )
    audit.add_argument("--json", action="store_true", help="JSON for scripts")
    audit.add_argument("--top", type=int, metavar="N", help="pairs to list (default: 20)")
    add_setting_groups(audit, *AUDIT_GROUPS)


def add_setting_groups(parser: argparse.ArgumentParser, *groups: str) -> None:
    """The flags of every setting in `groups`, each with its environment variable in --help."""
    for name, field in Settings.model_fields.items():
        if group_of(name) not in groups:
            continue
        help_text = f"{field.description} [env {env_of(name)}] (default: {field.get_default()})"
        if field.annotation is bool:
            parser.add_argument(
                f"--{flag_of(name)}",
                dest=name,
                action=argparse.BooleanOptionalAction,
                help=help_text,
            )
            continue
        choices = getattr(field.annotation, "__args__", None)
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


def usage_error(name: str, message: str) -> NoReturn:
    """One line naming the flag and its environment variable, then exit status 2."""
    where = f"--{flag_of(name)} / {env_of(name)}" if name in Settings.model_fields else name
    print(f"ksm-exporter: invalid {where}: {message}", file=sys.stderr)
    raise SystemExit(EXIT_USAGE)


def run_server(settings: Settings) -> int:
    configure_logging(settings.log_level, settings.log_format)
    web_config = None
    if settings.web_config_file:
        # Loaded once here, then followed; what does not load at start stops it, naming the flag.
        try:
            web_config = FollowedWebConfig(settings.web_config_file)
        except WebConfigError as err:
            usage_error("web_config_file", str(err))
    return serve(settings, web_config)


def status(args: argparse.Namespace, settings: Settings) -> int:
    window: float = getattr(args, "window", 1.0)
    top: int = getattr(args, "top", 10)
    if not 0.1 <= window <= 60:
        usage_error("--window", "must be between 0.1 and 60 seconds")
    if not 0 <= top <= 1000:
        usage_error("--top", "must be between 0 and 1000")
    # The snapshot lists the files it could not use; log lines would say it twice.
    configure_logging("error", settings.log_format)
    make_effective()  # other users' processes, where the capability is permitted
    roots = Roots(settings.path_sysfs, settings.path_procfs)
    sharing_key: str | None = getattr(args, "sharing", None)
    key = None
    if sharing_key is not None:
        try:
            key = parse_tenant_key(sharing_key)
        except BadTenantKey as err:
            usage_error("--sharing", str(err))
    target: str | None = getattr(args, "why", None)
    if target is not None:
        answer = answer_why(roots, target)
        print(render_why(answer, getattr(args, "json", False)), end="")
        return answer.status
    try:
        snapshot = take_snapshot(roots, window, top, tuning=settings.tuning)
    except KsmUnreadable as err:
        print(f"ksm-exporter status: {err}", file=sys.stderr)
        return 1
    if key is not None:
        snapshot = dataclasses.replace(
            snapshot, sharing=seen_of(take_audit(roots, key), time.time())
        )
    model = build_status(snapshot)
    print(render_json(model) if getattr(args, "json", False) else render_text(model), end="")
    return 0


def tune(args: argparse.Namespace, settings: Settings) -> int:
    interval: float = getattr(args, "interval", 1.0)
    if not 0.1 <= interval <= 60:
        usage_error("--interval", "must be between 0.1 and 60 seconds")
    configure_logging(settings.log_level, settings.log_format)
    return run_tuner(
        Roots(settings.path_sysfs, settings.path_procfs),
        settings.tuning,
        dry_run=getattr(args, "dry_run", False),
        take_over=getattr(args, "take_over", False),
        interval=interval,
        state_file=settings.tuning_state_file or None,
    )


def audit(args: argparse.Namespace, settings: Settings) -> int:
    top: int = getattr(args, "top", 20)
    if not 0 <= top <= 100_000:
        usage_error("--top", "must be between 0 and 100000")
    try:
        key = parse_tenant_key(getattr(args, "tenant_by", "vm"))
    except BadTenantKey as err:
        usage_error("--tenant-by", str(err))
    roots = Roots(settings.path_sysfs, settings.path_procfs)
    return run_audit(roots, key, getattr(args, "json", False), top)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = load_settings(args)
    command = getattr(args, "command", None)
    if command == "status":
        return status(args, settings)
    if command == "tune":
        return tune(args, settings)
    if command == "audit":
        return audit(args, settings)
    return run_server(settings)


__all__ = ["add_setting_groups", "build_parser", "load_settings", "main", "process_options"]

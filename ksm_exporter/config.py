"""Flags and environment variables, validated by pydantic-settings: the one typed form of
the settings, which the command line builds and the server and `status` read."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ksm_exporter.derive.tenants import BadTenantKey, TenantKey, parse_tenant_key
from ksm_exporter.derive.tuning import TuningOptions
from ksm_exporter.sources.process_identity import PROCESS_LABELS

__all__ = [
    "DEFAULT_PORT",
    "ENV_PREFIX",
    "PROCESS_LABELS",
    "ListenAddress",
    "Settings",
    "env_of",
    "flag",
    "flag_of",
    "group_of",
]

DEFAULT_PORT = 10131
ENV_PREFIX = "KSM_EXPORTER_"


class ListenAddress:
    """`host:port`, `[v6]:port` or `:port` (all interfaces)."""

    @staticmethod
    def split(address: str) -> tuple[str | None, int]:
        host, sep, port_text = address.rpartition(":")
        if not sep or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
            raise ValueError("expected host:port, [ipv6]:port or :port")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        elif ":" in host:
            raise ValueError("put an IPv6 address in brackets: [::1]:port")
        return (host or None), int(port_text)


def flag(name: str) -> dict[str, Any]:
    """Marks a setting with its command-line flag, following the Prometheus exporters' style."""
    return {"flag": name}


class Settings(BaseSettings):
    """Every setting, typed; frozen once validated. A flag's group is its first dotted part
    (`web`, `path`, `collector`, `tuning`, `log`): subcommands take the groups they use."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid", frozen=True)

    web_listen_address: str = Field(
        f":{DEFAULT_PORT}",
        description="Address to listen on for HTTP requests.",
        json_schema_extra=flag("web.listen-address"),
    )
    web_telemetry_path: str = Field(
        "/metrics",
        description="Path under which to expose metrics.",
        json_schema_extra=flag("web.telemetry-path"),
    )
    web_config_file: str | None = Field(
        None,
        description="Path to a web configuration file (TLS and basic auth, in the Prometheus "
        "exporter-toolkit format).",
        json_schema_extra=flag("web.config.file"),
    )
    web_idle_timeout: float = Field(
        10.0,
        ge=0.5,
        le=3600,
        description="Seconds a connection may go without a complete request before it is "
        "closed: keep-alive connections idle between scrapes, and clients that send their "
        "request too slowly.",
        json_schema_extra=flag("web.idle-timeout"),
    )
    path_sysfs: str = Field(
        "/sys", description="sysfs mount point.", json_schema_extra=flag("path.sysfs")
    )
    path_procfs: str = Field(
        "/proc", description="procfs mount point.", json_schema_extra=flag("path.procfs")
    )
    collector_process: bool = Field(
        True,
        description="Read every process's KSM counters from <procfs>/<pid>/ksm_stat.",
        json_schema_extra=flag("collector.process"),
    )
    collector_process_limit: int = Field(
        100,
        ge=0,
        description="Most processes with series of their own (those with most merging pages); "
        "the rest are summed into ksm_process_other_*.",
        json_schema_extra=flag("collector.process.limit"),
    )
    collector_process_labels: str = Field(
        ",".join(PROCESS_LABELS),
        description="Comma-separated process labels to export besides pid: comm, vm, vm_id, "
        "vm_uuid, namespace, cgroup (empty for none).",
        json_schema_extra=flag("collector.process.labels"),
    )
    collector_process_always_include: str = Field(
        "",
        description="Regular expression; processes one of whose labels (comm, guest name, VMID, "
        "UUID, namespace, cgroup path; exported or not) it matches always get series of their "
        "own, whatever the limit.",
        json_schema_extra=flag("collector.process.always-include"),
    )
    collector_sample_interval: float = Field(
        1.0,
        ge=0.01,
        le=3600,
        description="Seconds between the background samples of full_scans and ksmd's CPU "
        "time behind the scan-cost metrics.",
        json_schema_extra=flag("collector.sample-interval"),
    )
    collector_sharing: bool = Field(
        False,
        description="Audit who shares KSM pages with whom in the background (ksm_sharing_*): "
        "needs root with CAP_SYS_ADMIN, which the exporter otherwise never asks for.",
        json_schema_extra=flag("collector.sharing"),
    )
    collector_sharing_interval: float = Field(
        300.0,
        ge=10,
        le=86400,
        description="Seconds between two audits of page sharing (one takes about a second for "
        "4 GiB registered, on a thread of its own, never on a scrape).",
        json_schema_extra=flag("collector.sharing.interval"),
    )
    collector_sharing_tenant_by: str = Field(
        "vm",
        description="What makes a tenant of the sharing audit: vm, namespace, uid, unit, "
        "cgroup, cgroup:DEPTH or cgroup:REGEX.",
        json_schema_extra=flag("collector.sharing.tenant-by"),
    )
    collector_sharing_tenants: int = Field(
        100,
        ge=0,
        description="Most tenants with sharing series of their own (those sharing most pages "
        "with others); the rest are summed into ksm_sharing_other_tenants_*.",
        json_schema_extra=flag("collector.sharing.tenants"),
    )
    collector_sharing_pairs: int = Field(
        20,
        ge=0,
        description="Most pairs of tenants with a series of their own (those sharing most "
        "frames); the rest are summed into ksm_sharing_other_pairs_frames.",
        json_schema_extra=flag("collector.sharing.pairs"),
    )
    tuning_cpu_budget: float = Field(
        0.1,
        gt=0,
        le=1,
        description="Share of one CPU the tuning advice grants ksmd (0.1 is a tenth of a core).",
        json_schema_extra=flag("tuning.cpu-budget"),
    )
    tuning_steady_full_scan_seconds: float = Field(
        200.0,
        gt=0,
        le=86400,
        description="Full-scan time the tuning advice recommends once saved memory stops "
        "growing, unless the CPU budget needs longer (200 s, as the kernel's advisor).",
        json_schema_extra=flag("tuning.steady-full-scan-seconds"),
    )
    tuning_pressure_cpu_budget: float = Field(
        0.25,
        gt=0,
        le=1,
        description="Share of one CPU the tuner grants ksmd while the host is short of memory "
        "(MemAvailable under a tenth of MemTotal, or PSI's memory `some avg10` above 5): a "
        "saved page is worth more then.",
        json_schema_extra=flag("tuning.pressure-cpu-budget"),
    )
    tuning_probe_seconds: float = Field(
        3600.0,
        ge=60,
        le=7 * 86400,
        description="Where the tuner unmerged (run=2) and nothing says mergeable memory "
        "appeared, it lets ksmd look again this often.",
        json_schema_extra=flag("tuning.probe-seconds"),
    )
    tuning_state_file: str = Field(
        "/var/lib/ksm-exporter/tune.json",
        description="File where `ksm-exporter tune` keeps the settings it wrote, its latest "
        "change and why it stopped; the exporter serves it as the ksm_tuner_* metrics (empty "
        "for none).",
        json_schema_extra=flag("tuning.state-file"),
    )
    log_level: Literal["debug", "info", "warn", "error"] = Field(
        "info",
        description="Only log messages with the given severity or above.",
        json_schema_extra=flag("log.level"),
    )
    log_format: Literal["logfmt", "json"] = Field(
        "logfmt",
        description="Output format of log messages.",
        json_schema_extra=flag("log.format"),
    )

    @field_validator("web_listen_address")
    @classmethod
    def _valid_address(cls, value: str) -> str:
        ListenAddress.split(value)
        return value

    @field_validator("collector_process_labels")
    @classmethod
    def _known_labels(cls, value: str) -> str:
        labels = [label.strip() for label in value.split(",") if label.strip()]
        unknown = sorted(set(labels) - set(PROCESS_LABELS))
        if unknown:
            raise ValueError(
                f"unknown label {', '.join(unknown)}; choose from {', '.join(PROCESS_LABELS)}"
            )
        return ",".join(label for label in PROCESS_LABELS if label in labels)

    @field_validator("collector_process_always_include")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as err:
            raise ValueError(f"not a regular expression: {err}") from None
        return value

    @field_validator("collector_sharing_tenant_by")
    @classmethod
    def _tenant_key(cls, value: str) -> str:
        try:
            parse_tenant_key(value)
        except BadTenantKey as err:
            raise ValueError(str(err)) from None
        return value

    @field_validator("web_telemetry_path")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        if not value.startswith("/") or value in {"/", "/-/healthy", "/-/ready"}:
            raise ValueError("must start with / and not be /, /-/healthy or /-/ready")
        return value

    @property
    def tuning(self) -> TuningOptions:
        return TuningOptions(
            self.tuning_cpu_budget,
            self.tuning_steady_full_scan_seconds,
            self.tuning_pressure_cpu_budget,
            self.tuning_probe_seconds,
        )

    @property
    def sharing_tenant_key(self) -> TenantKey:
        return parse_tenant_key(self.collector_sharing_tenant_by)

    @property
    def process_labels(self) -> tuple[str, ...]:
        return tuple(label for label in self.collector_process_labels.split(",") if label)

    @property
    def process_always_include(self) -> re.Pattern[str] | None:
        pattern = self.collector_process_always_include
        return re.compile(pattern) if pattern else None


def flag_of(field_name: str) -> str:
    extra = Settings.model_fields[field_name].json_schema_extra
    assert isinstance(extra, dict)
    return str(extra["flag"])


def env_of(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()


def group_of(field_name: str) -> str:
    return flag_of(field_name).split(".", 1)[0]

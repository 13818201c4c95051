"""Flags and environment variables, validated by pydantic-settings."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_PORT = 10131
ENV_PREFIX = "KSM_EXPORTER_"


def flag(name: str) -> dict[str, Any]:
    """Marks a setting with its command-line flag, following the Prometheus exporters' style."""
    return {"flag": name}


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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

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
    path_sysfs: str = Field(
        "/sys", description="sysfs mount point.", json_schema_extra=flag("path.sysfs")
    )
    path_procfs: str = Field(
        "/proc", description="procfs mount point.", json_schema_extra=flag("path.procfs")
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

    @field_validator("web_telemetry_path")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        if not value.startswith("/") or value in {"/", "/-/healthy", "/-/ready"}:
            raise ValueError("must start with / and not be /, /-/healthy or /-/ready")
        return value


def flag_of(field_name: str) -> str:
    extra = Settings.model_fields[field_name].json_schema_extra
    assert isinstance(extra, dict)
    return str(extra["flag"])


def env_of(field_name: str) -> str:
    return ENV_PREFIX + field_name.upper()

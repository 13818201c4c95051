"""Settings as plain values once validated: what the server reads, without pydantic.

`config.Settings` checks flags and environment variables with pydantic-settings. The server
then starts from the checked values in a fresh process image (see `cli`), so pydantic's code
(about 14 MiB resident) is not part of the serving exporter.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ksm_exporter.derive.tuning import TuningOptions


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


class Derived:
    """What some settings mean, computed from their values; shared by both forms of them."""

    if TYPE_CHECKING:
        collector_process: bool
        collector_process_limit: int
        collector_process_labels: str
        collector_process_always_include: str
        tuning_cpu_budget: float
        tuning_steady_full_scan_seconds: float

    @property
    def tuning(self) -> TuningOptions:
        return TuningOptions(self.tuning_cpu_budget, self.tuning_steady_full_scan_seconds)

    @property
    def process_labels(self) -> tuple[str, ...]:
        return tuple(label for label in self.collector_process_labels.split(",") if label)

    @property
    def process_always_include(self) -> re.Pattern[str] | None:
        pattern = self.collector_process_always_include
        return re.compile(pattern) if pattern else None


class ValidatedSettings(Derived):
    """`config.Settings.model_dump()` of settings that passed validation, read as attributes."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        vars(self).update(values)

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"no setting {name!r}")

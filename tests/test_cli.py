from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ksm_exporter.cli import build_parser, load_settings
from ksm_exporter.config import DEFAULT_PORT, ListenAddress, Settings


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ksm_exporter", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
        check=False,
    )


def settings_from(*argv: str) -> Settings:
    return load_settings(build_parser().parse_args(argv))


@pytest.mark.unit
def test_defaults() -> None:
    settings = settings_from()
    assert settings.web_listen_address == f":{DEFAULT_PORT}"
    assert settings.web_telemetry_path == "/metrics"
    assert (settings.path_sysfs, settings.path_procfs) == ("/sys", "/proc")
    assert (settings.log_level, settings.log_format) == ("info", "logfmt")
    assert settings.collector_sample_interval == 1.0
    assert settings_from("--collector.sample-interval", "0.25").collector_sample_interval == 0.25
    assert (settings.tuning.cpu_budget, settings.tuning.steady_full_scan_seconds) == (0.1, 200.0)


@pytest.mark.unit
def test_tuning_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KSM_EXPORTER_TUNING_CPU_BUDGET", "0.05")
    monkeypatch.setenv("KSM_EXPORTER_TUNING_STEADY_FULL_SCAN_SECONDS", "300")
    assert settings_from().tuning.cpu_budget == 0.05
    assert settings_from().tuning.steady_full_scan_seconds == 300.0
    tuning = settings_from("--tuning.cpu-budget", "0.25", "--tuning.steady-full-scan-seconds", "60")
    assert (tuning.tuning.cpu_budget, tuning.tuning.steady_full_scan_seconds) == (0.25, 60.0)


@pytest.mark.unit
def test_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KSM_EXPORTER_PATH_SYSFS", "/host/sys")
    monkeypatch.setenv("KSM_EXPORTER_LOG_FORMAT", "json")
    settings = settings_from("--log.format", "logfmt")
    assert settings.path_sysfs == "/host/sys"
    assert settings.log_format == "logfmt"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("address", "expected"),
    [(":9999", (None, 9999)), ("127.0.0.1:80", ("127.0.0.1", 80)), ("[::1]:10", ("::1", 10))],
)
def test_listen_address_forms(address: str, expected: tuple[str | None, int]) -> None:
    assert ListenAddress.split(address) == expected


@pytest.mark.e2e
def test_help_lists_flags_and_environment_variables() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for flag, env in [
        ("--web.listen-address", "KSM_EXPORTER_WEB_LISTEN_ADDRESS"),
        ("--web.telemetry-path", "KSM_EXPORTER_WEB_TELEMETRY_PATH"),
        ("--path.sysfs", "KSM_EXPORTER_PATH_SYSFS"),
        ("--path.procfs", "KSM_EXPORTER_PATH_PROCFS"),
        ("--log.level", "KSM_EXPORTER_LOG_LEVEL"),
        ("--log.format", "KSM_EXPORTER_LOG_FORMAT"),
        ("--no-collector.process", "KSM_EXPORTER_COLLECTOR_PROCESS"),
        ("--collector.process.limit", "KSM_EXPORTER_COLLECTOR_PROCESS_LIMIT"),
        ("--collector.process.labels", "KSM_EXPORTER_COLLECTOR_PROCESS_LABELS"),
        ("--collector.process.always-include", "KSM_EXPORTER_COLLECTOR_PROCESS_ALWAYS_INCLUDE"),
        ("--tuning.cpu-budget", "KSM_EXPORTER_TUNING_CPU_BUDGET"),
        ("--tuning.steady-full-scan-seconds", "KSM_EXPORTER_TUNING_STEADY_FULL_SCAN_SECONDS"),
    ]:
        assert flag in result.stdout
        assert env in result.stdout.replace("\n", " ").replace("  ", "")


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("args", "env", "names"),
    [
        (["--web.listen-address", "nonsense"], {}, "--web.listen-address"),
        (["--web.listen-address", ":99999"], {}, "--web.listen-address"),
        ([], {"KSM_EXPORTER_WEB_LISTEN_ADDRESS": "::1:80"}, "KSM_EXPORTER_WEB_LISTEN_ADDRESS"),
        (["--web.telemetry-path", "metrics"], {}, "--web.telemetry-path"),
        ([], {"KSM_EXPORTER_LOG_LEVEL": "loud"}, "KSM_EXPORTER_LOG_LEVEL"),
        (["--log.format", "xml"], {}, "--log.format"),
        (["--collector.process.limit=-1"], {}, "--collector.process.limit"),
        (["--collector.process.limit=many"], {}, "--collector.process.limit"),
        (["--collector.process.labels=comm,user"], {}, "--collector.process.labels"),
        ([], {"KSM_EXPORTER_COLLECTOR_PROCESS_ALWAYS_INCLUDE": "(["}, "ALWAYS_INCLUDE"),
        ([], {"KSM_EXPORTER_COLLECTOR_PROCESS": "perhaps"}, "KSM_EXPORTER_COLLECTOR_PROCESS"),
        (["--collector.sample-interval", "0"], {}, "--collector.sample-interval"),
        ([], {"KSM_EXPORTER_COLLECTOR_SAMPLE_INTERVAL": "soon"}, "COLLECTOR_SAMPLE_INTERVAL"),
        (["--tuning.cpu-budget", "0"], {}, "--tuning.cpu-budget"),
        (["--tuning.cpu-budget", "1.5"], {}, "--tuning.cpu-budget"),
        ([], {"KSM_EXPORTER_TUNING_STEADY_FULL_SCAN_SECONDS": "-1"}, "STEADY_FULL_SCAN_SECONDS"),
    ],
)
def test_bad_value_is_one_line_and_exit_2(args: list[str], env: dict[str, str], names: str) -> None:
    result = run_cli(*args, env=env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if "ksm-exporter:" in line]
    assert len(error_lines) == 1
    assert names in error_lines[0]

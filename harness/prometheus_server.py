"""A real Prometheus server on 127.0.0.1, for end-to-end tests of rules and dashboard queries.

    with running_exporter() as exporter, running_prometheus(
        scrape_configs=[scrape_config("ksm", exporter.address)], rule_files=[RULES]
    ) as prometheus:
        prometheus.wait_for_scrapes(3)
        prometheus.wait_for_rule_evaluation()
        prometheus.query("instance:ksm_ksmd_cpu:ratio_rate5m")

The configuration is written as JSON, which Prometheus reads as YAML. Storage lives in a
temporary directory that is removed afterwards; the server is stopped in every case.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from harness.eventually import eventually
from harness.exporter_process import TOOLKIT_LISTENING, ChildExited
from harness.tools import require

T = TypeVar("T")
Config = dict[str, Any]

START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
RFC3339 = re.compile(r"(.+T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)")


class PrometheusError(AssertionError):
    """The HTTP API answered with an error, e.g. a query that does not parse."""


def scrape_config(
    job: str, *targets: str, interval: str = "1s", metrics_path: str = "/metrics"
) -> Config:
    """One static scrape job; targets are host:port."""
    return {
        "job_name": job,
        "scrape_interval": interval,
        "scrape_timeout": interval,
        "metrics_path": metrics_path,
        "static_configs": [{"targets": list(targets)}],
    }


def prometheus_config(
    scrape_configs: Sequence[Config] = (),
    rule_files: Sequence[str | Path] = (),
    interval: str = "1s",
) -> Config:
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(Path(path).resolve()) for path in rule_files],
        "scrape_configs": list(scrape_configs),
    }


@dataclass
class RunningServer:
    """A Prometheus-project server that running_server() started, named as its files are."""

    name: ClassVar[str]
    process: subprocess.Popen[bytes]
    url: str
    directory: Path

    @property
    def log(self) -> str:
        return (self.directory / f"{self.name}.log").read_text(errors="replace")


Server = TypeVar("Server", bound=RunningServer)


@dataclass
class RunningPrometheus(RunningServer):
    name = "prometheus"

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>; the `data` of a successful answer, else PrometheusError."""
        query = urllib.parse.urlencode(params)
        url = f"{self.url}/api/v1/{path}" + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as err:
            body = json.load(err)
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query's series: [{"metric": {labels}, "value": [ts, "1.5"]}, ...]."""
        params = {"query": expr} if at is None else {"query": expr, "time": str(at)}
        data = self.api("query", **params)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def query_range(
        self, expr: str, start: float, end: float, step: float = 1.0
    ) -> list[dict[str, Any]]:
        """A range query's series: [{"metric": {labels}, "values": [[ts, "1.5"], ...]}, ...]."""
        data = self.api("query_range", query=expr, start=str(start), end=str(end), step=str(step))
        return list(data["result"])

    def values(self, expr: str) -> dict[frozenset[tuple[str, str]], float]:
        """{labels: value} of an instant query, for exact assertions."""
        return {
            frozenset(series["metric"].items()): float(series["value"][1])
            for series in self.query(expr)
        }

    def value(self, expr: str) -> float:
        """The single value an instant query returns."""
        (only,) = self.values(expr).values()
        return only

    def targets(self) -> list[dict[str, Any]]:
        return list(self.api("targets", state="active")["activeTargets"])

    def rules(self) -> list[dict[str, Any]]:
        """Every loaded rule, each with its group's name and file added."""
        return [
            {**rule, "group": group["name"], "file": group["file"]}
            for group in self.api("rules")["groups"]
            for rule in group["rules"]
        ]

    def wait_until(self, check: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
        """The first truthy result of `check`, polled; Prometheus' log if none comes in time."""
        try:
            return eventually(check, timeout, interval=0.2, what=f"Prometheus: {what}")
        except AssertionError as err:
            raise AssertionError(f"{err}\n{self.log}") from None

    def wait_for_scrapes(self, count: int, job: str | None = None, timeout: float = 30.0) -> None:
        """Until every active target (of `job`) has answered `count` scrapes."""
        selector = f'{{job="{job}"}}' if job else ""

        def scraped() -> bool:
            targets = [t for t in self.targets() if job is None or t["labels"]["job"] == job]
            if not targets:
                return False
            counts = self.values(f"sum_over_time(up{selector}[10m])")
            return len(counts) == len(targets) and min(counts.values()) >= count

        self.wait_until(scraped, f"{count} successful scrapes of every target", timeout)

    def wait_for_rule_evaluation(self, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Until every rule has been evaluated after this call; returns the rules then."""
        since = time.time()

        def evaluated() -> tuple[list[dict[str, Any]]] | None:
            rules = self.rules()
            done = all(parse_time(rule["lastEvaluation"]) > since for rule in rules)
            return (rules,) if done else None  # no rules at all is done, too

        return self.wait_until(evaluated, "an evaluation of every rule", timeout)[0]


def parse_time(rfc3339: str) -> float:
    """Prometheus' RFC 3339 timestamps (up to nanoseconds, 'Z' or an offset) as Unix seconds."""
    match = RFC3339.fullmatch(rfc3339)
    assert match, f"not an RFC 3339 time: {rfc3339!r}"
    whole, fraction, zone = match.groups()
    seconds = datetime.fromisoformat(whole + zone).timestamp()
    return seconds + (float(fraction) if fraction else 0.0)


@contextlib.contextmanager
def running_prometheus(
    config: Config | None = None,
    *,
    scrape_configs: Sequence[Config] = (),
    rule_files: Sequence[str | Path] = (),
    interval: str = "1s",
) -> Iterator[RunningPrometheus]:
    """Debian's `prometheus` on a free port of 127.0.0.1, with `config` or one built from
    the scrape configs and rule files (global scrape and evaluation interval `interval`)."""
    binary = require("prometheus", "prometheus")
    config = config or prometheus_config(scrape_configs, rule_files, interval)
    with running_server(
        RunningPrometheus, binary, config, "--storage.tsdb.path=data", "--log.level=info"
    ) as prometheus:
        yield prometheus


@contextlib.contextmanager
def running_server(
    server: type[Server], binary: str, config: Config, *flags: str
) -> Iterator[Server]:
    """A Prometheus-project server on a free port of 127.0.0.1, working in a temporary
    directory of its own: `config` written there as <name>.yml, its output in <name>.log.
    Yielded once it answers /-/ready; stopped in every case."""
    name = server.name
    with tempfile.TemporaryDirectory(prefix=f"ksm-{name}-") as tmp:
        directory = Path(tmp)
        (directory / f"{name}.yml").write_text(json.dumps(config, indent=2))
        with (directory / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={directory / f'{name}.yml'}",
                    "--web.listen-address=127.0.0.1:0",  # it binds a free port and logs it
                    *flags,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=directory,
            )
        try:
            url = started_server(process, directory / f"{name}.log", name)
            yield server(process, url, directory)
        finally:
            stop(process)


def started_server(process: subprocess.Popen[bytes], log: Path, name: str) -> str:
    """The URL of a Prometheus-project server (Prometheus, Alertmanager) started with
    --web.listen-address=127.0.0.1:0, once it has logged its port and answers /-/ready."""

    def listening() -> str | None:
        if process.poll() is not None:
            raise ChildExited(f"{name} exited with {process.returncode}:\n{log.read_text()}")
        match = TOOLKIT_LISTENING.search(log.read_text(errors="replace"))
        return match.group(1) if match else None

    url = f"http://{eventually(listening, START_TIMEOUT, what=f'{name} listening')}"

    def ready() -> bool:
        try:
            with urllib.request.urlopen(url + "/-/ready", timeout=1):
                return True
        except OSError:
            return listening() is None  # raises if it exited; False: not ready yet

    eventually(ready, START_TIMEOUT, what=f"{name} ready\n{log.read_text(errors='replace')}")
    return url


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()

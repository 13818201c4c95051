"""`--web.config.file` followed while the exporter runs, as exporter-toolkit does.

exporter-toolkit reads its file again on every request, so a rotated certificate (cert-manager,
an ACME client) or a removed user takes effect at once. Here each request and each TLS
handshake first compares the `stat` of the file and of every file it names (certificate,
key, client CA) with what was last loaded: a few system calls, microseconds. Only when one
changed is the configuration loaded again, on the event loop (milliseconds, once per change).

- Users: the next request is checked against the users the file lists now.
- TLS: OpenSSL asks the listening context's server-name callback during every handshake,
  whether or not the client sent a name; the callback swaps the connection over to the
  context built from the current certificate, key and client CA.
- A file that does not load (bad YAML, a key that does not match its certificate, a file
  half written) keeps the last configuration that did. It is said in one log line, counted
  in `ksm_exporter_web_config_reload_failures_total`, and
  `ksm_exporter_web_config_last_reload_successful` is 0 until a good file arrives. It is not
  tried again until one of the files changes once more.
- What OpenSSL fixes for a connection before that callback runs (TLS on or off, min_version,
  max_version, client_auth_type) cannot change without a restart: a file that changes them
  is refused the same way, saying so.
"""

from __future__ import annotations

import logging
import os
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ksm_exporter.server.basic_auth import BasicAuth, Handler
from ksm_exporter.server.web_config import (
    TlsServerConfig,
    WebConfig,
    WebConfigError,
    load_web_config,
)

log = logging.getLogger(__name__)

# (device, inode, size, mtime, ctime) of a file, or None where it cannot be stat'ed.
FileStat = tuple[int, int, int, int, int] | None


def file_stat(path: str) -> FileStat:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def named_files(path: str, config: WebConfig | None) -> tuple[str, ...]:
    """The file itself and the files it names, relative to its directory."""
    tls = config.tls_server_config if config else None
    if tls is None:
        return (path,)
    named = (tls.cert_file, tls.key_file, tls.client_ca_file)
    base = os.path.dirname(path)
    return (path, *(os.path.join(base, name) for name in named if name))


def fixed_at_start(tls: TlsServerConfig | None) -> tuple[str, str, str] | None:
    """The settings a running listener keeps: OpenSSL applies them before the swap."""
    return (tls.min_version, tls.max_version, tls.client_auth_type) if tls else None


@dataclass(frozen=True)
class Loaded:
    """One configuration that loaded, and the stat of its files when it was read."""

    config: WebConfig
    ssl_context: ssl.SSLContext | None
    auth: BasicAuth | None
    stats: tuple[FileStat, ...]


class FollowedWebConfig:
    """The web configuration its files hold now, or the last one of them that loaded."""

    def __init__(self, path: str) -> None:
        """Raises WebConfigError where the file cannot be used at start."""
        self.path = path
        self.current = self._load(previous=None)
        self.reload_failures = 0
        self.last_reload_successful = True
        self.last_success = time.time()
        self._refused: tuple[FileStat, ...] | None = None

    def _stats(self, config: WebConfig | None) -> tuple[FileStat, ...]:
        return tuple(file_stat(name) for name in named_files(self.path, config))

    def _load(self, previous: Loaded | None, seen: tuple[FileStat, ...] = ()) -> Loaded:
        """`seen`: the stats that showed a change, taken before reading, so that a file
        replaced during the read is read again next time."""
        config, ssl_context = load_web_config(self.path)
        same_files = previous and named_files(self.path, config) == named_files(
            self.path, previous.config
        )
        stats = seen if same_files else self._stats(config)
        if previous is not None:
            before = previous.config.tls_server_config
            if fixed_at_start(config.tls_server_config) != fixed_at_start(before):
                raise WebConfigError(
                    f"{self.path}: turning TLS on or off, min_version, max_version and "
                    "client_auth_type take effect at restart"
                )
        users = config.basic_auth_users
        if previous is not None and users == previous.config.basic_auth_users:
            auth = previous.auth  # keeps the passwords it already checked
        else:
            auth = BasicAuth(users) if users else None
        return Loaded(config, ssl_context, auth, stats)

    def refresh(self) -> Loaded:
        """The current configuration, loaded again first where one of its files changed."""
        current = self.current
        stats = self._stats(current.config)
        if stats in (current.stats, self._refused):
            return current
        try:
            self.current = self._load(current, stats)
        except WebConfigError as err:
            self._refused = stats
            self.reload_failures += 1
            self.last_reload_successful = False
            log.error(
                "cannot reload the web configuration, keeping the last one that loaded",
                extra={"file": self.path, "err": err},
            )
            return current
        self._refused = None
        self.last_reload_successful = True
        self.last_success = time.time()
        log.info("web configuration reloaded", extra={"file": self.path})
        return self.current

    def listening_context(self) -> ssl.SSLContext | None:
        """The context the server listens with: every handshake takes the current one."""
        context = self.current.ssl_context
        if context is not None:
            context.sni_callback = self._handshake
        return context

    def _handshake(
        self, connection: ssl.SSLObject | ssl.SSLSocket, _name: str | None, _: ssl.SSLContext
    ) -> None:
        current = self.refresh().ssl_context
        if current is not None and connection.context is not current:
            connection.context = current

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        auth = self.refresh().auth
        if auth is None:
            return await handler(request)
        return await auth.middleware(request, handler)

    def families(self) -> Iterator[Metric]:
        successful = GaugeMetricFamily(
            "ksm_exporter_web_config_last_reload_successful",
            "Whether the last load of the web configuration file succeeded (1) or the last "
            "good one is still in use (0).",
        )
        successful.add_metric([], 1 if self.last_reload_successful else 0)
        yield successful
        timestamp = GaugeMetricFamily(
            "ksm_exporter_web_config_last_reload_success_timestamp_seconds",
            "When the web configuration in use was loaded, in seconds since the epoch.",
        )
        timestamp.add_metric([], self.last_success)
        yield timestamp
        failures = CounterMetricFamily(
            "ksm_exporter_web_config_reload_failures",
            "Changed web configuration files that could not be loaded and were not applied.",
        )
        failures.add_metric([], self.reload_failures)
        yield failures

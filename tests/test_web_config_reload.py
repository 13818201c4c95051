"""--web.config.file followed while the exporter runs: rotated certificates, removed users,
and files that do not load, on the real exporter process and on the follower itself."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest

from harness.eventually import eventually
from harness.exporter_process import RunningExporter, running_exporter
from harness.exposition import parse_samples, value
from ksm_exporter.server.web_config import WebConfigError
from ksm_exporter.server.web_config_reload import FollowedWebConfig
from tests.support.tls import Certificate, make_certificate

PASSWORD = "correct horse"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()
FAILURES = "ksm_exporter_web_config_reload_failures_total"
SUCCESSFUL = "ksm_exporter_web_config_last_reload_successful"


def basic(user: str, password: str = PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def tls_config(certificate: Certificate, users: tuple[str, ...] = ()) -> str:
    text = certificate.server_config(relative=True)
    if users:
        text += "basic_auth_users:\n" + "".join(f"  {user}: '{HASH}'\n" for user in users)
    return text


def replace_file(path: Path, text: str | bytes) -> None:
    """As configuration management and cert-manager do: a new file renamed over the old."""
    new = path.with_suffix(path.suffix + ".new")
    new.write_bytes(text.encode() if isinstance(text, str) else text)
    os.replace(new, path)


def served_fingerprint(exporter: RunningExporter) -> str:
    """SHA-256 of the certificate a new TLS connection gets (no SNI: the address is an IP).

    Any certificate is taken here: the test certificates share their subject, which a trust
    store holding two of them cannot tell apart."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    host, port = exporter.address.rsplit(":", 1)
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=host) as connection,
    ):
        der = connection.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).hexdigest()


def fingerprint(certificate: Certificate) -> str:
    der = ssl.PEM_cert_to_DER_cert(certificate.cert_file.read_text())
    return hashlib.sha256(der).hexdigest()


def status_of(exporter: RunningExporter, path: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(exporter.url + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5, context=exporter.tls) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


@pytest.mark.e2e
def test_a_rotated_certificate_is_served_on_the_next_handshake(tmp_path: Path) -> None:
    first = make_certificate(tmp_path, "server")
    second = make_certificate(tmp_path, "next")
    first_pem = first.cert_file.read_text()
    config = tmp_path / "web.yml"
    config.write_text(tls_config(first))
    with running_exporter(f"--web.config.file={config}", tls=first.client_context()) as exporter:
        assert served_fingerprint(exporter) == fingerprint(first)
        rotated = fingerprint(second)
        replace_file(first.key_file, second.key_file.read_bytes())
        replace_file(first.cert_file, second.cert_file.read_bytes())
        eventually(
            lambda: served_fingerprint(exporter) == rotated,
            10,
            what="the new certificate served",
        )
        # A client that trusts only the new certificate is served; one that trusts only the
        # old one is refused: the old certificate is no longer in use.
        exporter.tls = second.client_context()
        samples = parse_samples(exporter.get("/metrics"))
        assert value(samples, SUCCESSFUL) == 1
        assert value(samples, FAILURES) == 0
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(
                exporter.url + "/metrics",
                timeout=5,
                context=ssl.create_default_context(cadata=first_pem),
            )
    assert "Traceback" not in exporter.stop()


@pytest.mark.e2e
def test_a_removed_user_is_refused_at_once_and_a_broken_file_keeps_the_last_good_one(
    tmp_path: Path,
) -> None:
    certificate = make_certificate(tmp_path)
    config = tmp_path / "web.yml"
    config.write_text(tls_config(certificate, ("prometheus", "grafana")))
    with running_exporter(
        f"--web.config.file={config}",
        tls=certificate.client_context(),
        headers=basic("prometheus"),
    ) as exporter:
        assert status_of(exporter, "/-/ready", basic("grafana")) == 200
        replace_file(config, tls_config(certificate, ("prometheus",)))
        assert status_of(exporter, "/-/ready", basic("grafana")) == 401
        assert status_of(exporter, "/-/ready", basic("prometheus")) == 200

        # Broken files: not YAML, then a key that does not match the certificate.
        replace_file(config, "basic_auth_users: [\n")
        assert status_of(exporter, "/-/ready", basic("prometheus")) == 200
        assert status_of(exporter, "/-/ready", basic("grafana")) == 401
        samples = parse_samples(exporter.get("/metrics"))
        assert (value(samples, FAILURES), value(samples, SUCCESSFUL)) == (1, 0)
        make_certificate(tmp_path, "other")
        replace_file(config, tls_config(certificate).replace("server.key", "other.key"))
        assert served_fingerprint(exporter) == fingerprint(certificate)
        samples = parse_samples(exporter.get("/metrics"))
        assert (value(samples, FAILURES), value(samples, SUCCESSFUL)) == (2, 0)

        # A good file again: applied, and the gauge says so.
        replace_file(config, tls_config(certificate, ("grafana",)))
        assert status_of(exporter, "/-/ready", basic("prometheus")) == 401
        samples = parse_samples(
            urllib.request.urlopen(
                urllib.request.Request(exporter.url + "/metrics", headers=basic("grafana")),
                timeout=5,
                context=exporter.tls,
            )
            .read()
            .decode()
        )
        assert (value(samples, FAILURES), value(samples, SUCCESSFUL)) == (2, 1)
    log = exporter.stop()
    refused = [line for line in log.splitlines() if "cannot reload the web configuration" in line]
    assert len(refused) == 2, log
    assert "not valid YAML" in refused[0]
    assert "KEY_VALUES_MISMATCH" in refused[1]
    assert "Traceback" not in log


@pytest.mark.unit
def test_changes_a_running_listener_cannot_take_are_refused(tmp_path: Path) -> None:
    certificate = make_certificate(tmp_path)
    config = tmp_path / "web.yml"
    config.write_text(tls_config(certificate))
    followed = FollowedWebConfig(str(config))
    loaded = followed.refresh()
    assert followed.refresh() is loaded  # nothing changed: nothing read
    for text in ("", tls_config(certificate) + "  min_version: TLS13\n"):
        replace_file(config, text)
        assert followed.refresh() is loaded
        assert not followed.last_reload_successful
    assert followed.reload_failures == 2
    followed.refresh()  # the refused file is not tried again until it changes
    assert followed.reload_failures == 2


@pytest.mark.unit
def test_a_file_that_does_not_load_at_start_raises(tmp_path: Path) -> None:
    config = tmp_path / "web.yml"
    config.write_text("basic_auth_users: {a: b}\n")
    with pytest.raises(WebConfigError, match="password must be a bcrypt hash"):
        FollowedWebConfig(str(config))

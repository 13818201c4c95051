"""--web.config.file: the file's checks, TLS and basic auth on the real exporter."""

from __future__ import annotations

import base64
import http.client
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest
from pytest_aiohttp import AiohttpClient

from harness.exporter_process import running_exporter
from harness.exposition import parse_samples, value
from harness.paths import fixture_roots
from ksm_exporter.collector.collection import KsmCollection
from ksm_exporter.reading.host_reader import HostReader
from ksm_exporter.server.app import make_app
from ksm_exporter.server.basic_auth import BasicAuth
from ksm_exporter.server.web_config import WebConfigError, load_web_config
from tests.support.tls import Certificate, make_certificate
from tests.test_cli import run_cli

# Cost 4, the lowest bcrypt allows, keeps the tests fast; the format is the same.
PASSWORD = "correct horse"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
def certificate(tmp_path: Path) -> Certificate:
    return make_certificate(tmp_path)


def fixture_collection() -> KsmCollection:
    return KsmCollection(HostReader(fixture_roots("current"), 4096))


def write_config(directory: Path, text: str) -> Path:
    path = directory / "web.yml"
    path.write_text(text)
    return path


@pytest.mark.unit
def test_tls_and_users_load(tmp_path: Path, certificate: Certificate) -> None:
    # Relative paths are relative to the file's directory, as in exporter-toolkit.
    path = write_config(
        tmp_path,
        certificate.server_config("min_version: TLS13", relative=True)
        + f"basic_auth_users:\n  prometheus: '{HASH}'\n",
    )
    config, context = load_web_config(str(path))
    assert config.basic_auth_users == {"prometheus": HASH}
    assert context is not None
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert context.verify_mode == ssl.CERT_NONE


@pytest.mark.unit
def test_empty_file_means_plain_http_without_auth(tmp_path: Path) -> None:
    config, context = load_web_config(str(write_config(tmp_path, "")))
    assert (config.basic_auth_users, config.tls_server_config, context) == ({}, None, None)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("tls_server_config: [\n", "not valid YAML"),
        ("- a list\n", "top level: Input should be a valid dictionary"),
        ("basic_auth_user:\n  a: b\n", "basic_auth_user: Extra inputs are not permitted"),
        ("basic_auth_users:\n  alice: plaintext\n", "user 'alice': password must be a bcrypt"),
        ("tls_server_config:\n  cert_file: x.crt\n", "tls_server_config.key_file: Field required"),
        (
            "tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS14\n",
            "tls_server_config.min_version: Input should be 'TLS10', 'TLS11', 'TLS12' or 'TLS13'",
        ),
        (
            "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n",
            "cannot load cert_file",
        ),
    ],
)
def test_errors_are_one_line_naming_the_file(tmp_path: Path, text: str, reason: str) -> None:
    path = write_config(tmp_path, text)
    with pytest.raises(WebConfigError) as caught:
        load_web_config(str(path))
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert reason in message
    assert "\n" not in message


@pytest.mark.unit
def test_key_that_does_not_match_the_certificate(tmp_path: Path) -> None:
    one, other = make_certificate(tmp_path, "one"), make_certificate(tmp_path, "other")
    path = write_config(
        tmp_path,
        f"tls_server_config:\n  cert_file: {one.cert_file}\n  key_file: {other.key_file}\n",
    )
    with pytest.raises(WebConfigError, match="KEY_VALUES_MISMATCH"):
        load_web_config(str(path))


@pytest.mark.unit
def test_min_version_above_max_version(tmp_path: Path, certificate: Certificate) -> None:
    path = write_config(
        tmp_path,
        certificate.server_config("min_version: TLS13", "max_version: TLS12"),
    )
    with pytest.raises(WebConfigError, match="min_version TLS13 is above max_version TLS12"):
        load_web_config(str(path))


@pytest.mark.e2e
@pytest.mark.parametrize("text", ["basic_auth_users: {a: b}\n", None])
def test_bad_file_stops_start_up_with_one_line_and_exit_2(tmp_path: Path, text: str | None) -> None:
    path = tmp_path / "web.yml"
    if text is not None:
        path.write_text(text)
    result = run_cli(f"--web.config.file={path}", "--web.listen-address=127.0.0.1:0")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    line = result.stderr.strip()
    assert line.startswith(
        f"ksm-exporter: invalid --web.config.file / KSM_EXPORTER_WEB_CONFIG_FILE: {path}: "
    )
    assert ("password must be a bcrypt hash" if text else "No such file or directory") in line


@pytest.mark.unit
async def test_basic_auth_right_wrong_missing(aiohttp_client: AiohttpClient) -> None:
    auth = BasicAuth({"prometheus": HASH})
    client = await aiohttp_client(make_app(fixture_collection(), auth=auth))
    good = await client.get("/metrics", headers=basic("prometheus", PASSWORD))
    assert good.status == 200
    assert value(parse_samples(await good.text()), "ksm_pages_sharing") == 30000
    refused = {
        "wrong password": basic("prometheus", "wrong"),
        "unknown user": basic("grafana", PASSWORD),
        "missing": {},
        "not basic": {"Authorization": "Bearer abc"},
        "not base64": {"Authorization": "Basic !!!"},
        "over 72 bytes": basic("prometheus", PASSWORD + "x" * 80),
    }
    for case, headers in refused.items():
        for path in ("/metrics", "/", "/-/healthy", "/-/ready", "/nope"):
            response = await client.get(path, headers=headers)
            assert response.status == 401, (case, path)
            assert response.headers["WWW-Authenticate"] == 'Basic realm="ksm-exporter"'
    assert (await client.get("/-/healthy", headers=basic("prometheus", PASSWORD))).status == 200


@pytest.mark.unit
async def test_a_password_that_passed_bcrypt_is_not_checked_again(
    aiohttp_client: AiohttpClient,
) -> None:
    auth = BasicAuth({"prometheus": HASH})
    client = await aiohttp_client(make_app(fixture_collection(), auth=auth))
    for _ in range(5):
        assert (await client.get("/-/ready", headers=basic("prometheus", PASSWORD))).status == 200
    assert auth.bcrypt_checks == 1
    # A wrong password is never served from the cache, and does not evict the right one.
    assert (await client.get("/-/ready", headers=basic("prometheus", "wrong"))).status == 401
    assert (await client.get("/-/ready", headers=basic("prometheus", PASSWORD))).status == 200
    assert auth.bcrypt_checks == 2


@pytest.mark.e2e
def test_https_scrape_and_plain_http_refused(tmp_path: Path, certificate: Certificate) -> None:
    path = write_config(
        tmp_path,
        certificate.server_config("min_version: TLS13"),
    )
    with running_exporter(
        f"--web.config.file={path}",
        f"--path.sysfs={fixture_roots('current').sysfs}",
        tls=certificate.client_context(),
    ) as exporter:
        assert exporter.url.startswith("https://127.0.0.1:")
        samples = parse_samples(exporter.get("/metrics"))
        assert value(samples, "ksm_pages_sharing") == 30000
        plain = exporter.url.replace("https://", "http://")
        with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
            urllib.request.urlopen(plain + "/metrics", timeout=5)
        tls12 = certificate.client_context(ssl.TLSVersion.TLSv1_2)
        with pytest.raises(urllib.error.URLError) as too_old:
            urllib.request.urlopen(exporter.url + "/metrics", timeout=5, context=tls12)
        assert isinstance(too_old.value.reason, ssl.SSLError)
        # Still serving after both refusals.
        assert value(parse_samples(exporter.get("/metrics")), "ksm_pages_sharing") == 30000
    # Refused handshakes are a client's problem: no traceback in the exporter's log.
    err = exporter.stop()
    assert [line for line in err.splitlines() if "level=info" not in line] == []


@pytest.mark.e2e
def test_basic_auth_over_tls(tmp_path: Path, certificate: Certificate) -> None:
    path = write_config(
        tmp_path,
        certificate.server_config() + f"basic_auth_users:\n  prometheus: '{HASH}'\n",
    )
    tls = certificate.client_context()
    with running_exporter(
        f"--web.config.file={path}", tls=tls, headers=basic("prometheus", PASSWORD)
    ) as exporter:
        assert "ksm_available" in exporter.get("/metrics")
        for headers in (basic("prometheus", "wrong"), {}):
            request = urllib.request.Request(exporter.url + "/metrics", headers=headers)
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=5, context=tls)
            assert refused.value.code == 401
            assert refused.value.headers["WWW-Authenticate"] == 'Basic realm="ksm-exporter"'


def refused_in_handshake(url: str, context: ssl.SSLContext) -> bool:
    """With TLS 1.3 the server's refusal of a client certificate arrives after the client
    finished its handshake: as an alert, or as the connection closed before any response."""
    try:
        urllib.request.urlopen(url, timeout=5, context=context)
    except (http.client.RemoteDisconnected, ConnectionResetError, ssl.SSLError):
        return True
    except urllib.error.URLError as err:
        return isinstance(err.reason, ssl.SSLError | ConnectionResetError)
    return False


@pytest.mark.e2e
def test_client_certificates_required(tmp_path: Path, certificate: Certificate) -> None:
    client = make_certificate(tmp_path, "client")
    path = write_config(
        tmp_path,
        certificate.server_config(
            "client_auth_type: RequireAndVerifyClientCert", f"client_ca_file: {client.cert_file}"
        ),
    )
    with_cert = certificate.client_context()
    with_cert.load_cert_chain(client.cert_file, client.key_file)
    stranger = make_certificate(tmp_path, "stranger")
    with_other_cert = certificate.client_context()
    with_other_cert.load_cert_chain(stranger.cert_file, stranger.key_file)
    with running_exporter(f"--web.config.file={path}", tls=with_cert) as exporter:
        url = exporter.url + "/metrics"
        assert "ksm_available" in exporter.get("/metrics")
        assert refused_in_handshake(url, certificate.client_context())  # no certificate
        assert refused_in_handshake(url, with_other_cert)  # one the CA did not sign
        assert "ksm_available" in exporter.get("/metrics")


@pytest.mark.unit
def test_client_verification_needs_a_ca(tmp_path: Path, certificate: Certificate) -> None:
    path = write_config(
        tmp_path,
        certificate.server_config("client_auth_type: VerifyClientCertIfGiven"),
    )
    with pytest.raises(WebConfigError, match="VerifyClientCertIfGiven needs client_ca_file"):
        load_web_config(str(path))

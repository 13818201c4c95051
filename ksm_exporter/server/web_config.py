"""`--web.config.file`: TLS and basic auth in the Prometheus exporter-toolkit format.

The file is checked whole at start-up, certificates and keys included, so a mistake stops
the exporter with one line instead of surfacing at the first scrape; `web_config_reload`
loads it again, the same way, whenever it or a file it names changes.
"""

from __future__ import annotations

import os
import re
import ssl
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
TlsVersionName = Literal["TLS10", "TLS11", "TLS12", "TLS13"]

# Only the client_auth_type values whose Go semantics ssl can reproduce exactly.
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
ClientAuthName = Literal["NoClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"]

# $2a$/$2b$/$2y$, a two-digit cost, then 22 characters of salt and 31 of hash.
BCRYPT_HASH = re.compile(r"^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$")


class WebConfigError(Exception):
    """A web configuration file that cannot be used, with a one-line reason."""


class _Strict(BaseModel):
    # Unknown keys are errors, as in exporter-toolkit: a misspelt security setting must
    # not be silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsServerConfig(_Strict):
    cert_file: str
    key_file: str
    min_version: TlsVersionName = "TLS12"
    max_version: TlsVersionName = "TLS13"
    client_auth_type: ClientAuthName = "NoClientCert"
    client_ca_file: str | None = None


class WebConfig(_Strict):
    tls_server_config: TlsServerConfig | None = None
    basic_auth_users: dict[str, str] = Field(default_factory=dict)

    @field_validator("basic_auth_users")
    @classmethod
    def _bcrypt_hashes(cls, users: dict[str, str]) -> dict[str, str]:
        for user, hashed in users.items():
            if not BCRYPT_HASH.match(hashed):
                raise ValueError(f"user {user!r}: password must be a bcrypt hash ($2b$...)")
        return users


def load_web_config(path: str) -> tuple[WebConfig, ssl.SSLContext | None]:
    """The validated configuration and, when it asks for TLS, the server's SSL context."""
    import yaml  # noqa: PLC0415 - loaded only where a web config file is given (memory)

    try:
        with open(path, "rb") as f:
            document = yaml.safe_load(f)
    except OSError as err:
        raise WebConfigError(f"{path}: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        raise WebConfigError(f"{path}: not valid YAML: {one_line(str(err))}") from None
    try:
        config = WebConfig.model_validate(document or {})
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "top level"
        message = first["msg"].removeprefix("Value error, ")
        raise WebConfigError(f"{path}: {where}: {message}") from None
    if config.tls_server_config is None:
        return config, None
    try:
        return config, ssl_context(config.tls_server_config, os.path.dirname(path))
    except WebConfigError as err:
        raise WebConfigError(f"{path}: {err}") from None


def ssl_context(tls: TlsServerConfig, base_dir: str) -> ssl.SSLContext:
    """Paths in the file are relative to the file's own directory, as in exporter-toolkit."""
    if TLS_VERSIONS[tls.min_version] > TLS_VERSIONS[tls.max_version]:
        raise WebConfigError(
            f"tls_server_config: min_version {tls.min_version} is above max_version "
            f"{tls.max_version}"
        )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    context.maximum_version = TLS_VERSIONS[tls.max_version]
    cert_file = os.path.join(base_dir, tls.cert_file)
    key_file = os.path.join(base_dir, tls.key_file)
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as err:
        raise WebConfigError(
            f"tls_server_config: cannot load cert_file {cert_file} with key_file {key_file}: "
            f"{one_line(str(err))}"
        ) from None
    context.verify_mode = CLIENT_AUTH[tls.client_auth_type]
    if tls.client_auth_type != "NoClientCert":
        if tls.client_ca_file is None:
            raise WebConfigError(
                f"tls_server_config: client_auth_type {tls.client_auth_type} needs client_ca_file"
            )
        ca_file = os.path.join(base_dir, tls.client_ca_file)
        try:
            context.load_verify_locations(ca_file)
        except (OSError, ssl.SSLError) as err:
            raise WebConfigError(
                f"tls_server_config: cannot load client_ca_file {ca_file}: {one_line(str(err))}"
            ) from None
    return context


def one_line(text: str) -> str:
    return " ".join(text.split())

"""A self-signed server certificate for 127.0.0.1, made fresh for a test."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Certificate:
    cert_file: Path
    key_file: Path

    def server_config(self, *options: str, relative: bool = False) -> str:
        """A web configuration's tls_server_config that serves this certificate, with more of
        its options ("min_version: TLS13"); with `relative`, the files by name alone, which
        the exporter looks for beside the configuration file, as exporter-toolkit does."""
        cert, key = self.cert_file, self.key_file
        if relative:
            cert, key = Path(cert.name), Path(key.name)
        lines = (f"cert_file: {cert}", f"key_file: {key}", *options)
        return "tls_server_config:\n" + "".join(f"  {line}\n" for line in lines)

    def client_context(self, version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
        """A client that trusts only this certificate, optionally pinned to one TLS version."""
        context = ssl.create_default_context(cafile=str(self.cert_file))
        if version is not None:
            context.minimum_version = context.maximum_version = version
        return context


def make_certificate(directory: Path, name: str = "server") -> Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ksm-exporter test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / f"{name}.crt", directory / f"{name}.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificate(cert_file, key_file)

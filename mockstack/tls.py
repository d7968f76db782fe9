"""A throw-away certificate authority and server certificate for the TLS emulators.

The BOSH Director is only ever reached over TLS with its own CA, so the emulator does the
same: at start a CA and a server certificate for ``127.0.0.1`` / ``localhost`` are made with
the ``cryptography`` package and written to a directory; clients verify against
``ca_path`` (``requests.get(url, verify=material.ca_path)``). Nothing is reused across runs.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_HOSTS = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class TLSMaterial:
    """PEM files of one generated CA and the server certificate it signed."""

    ca_path: str  # give this to clients (verify=..., ca_cert in the reconciler config)
    cert_path: str
    key_path: str
    ca_pem: str

    def server_context(self) -> ssl.SSLContext:
        """An ``SSLContext`` serving the certificate (TLS 1.2+)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_path, self.key_path)
        return context


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mockstack"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_tls(directory: str | os.PathLike | None = None, *, hosts: tuple[str, ...] = DEFAULT_HOSTS,
             name: str = "mockstack", days: int = 30) -> TLSMaterial:
    """Generate a CA and a server certificate for ``hosts`` and write ``<name>-ca.pem``,
    ``<name>-cert.pem`` and ``<name>-key.pem`` (0600) to ``directory`` (a new temporary
    directory when None)."""
    if not hosts:
        raise ValueError("make_tls: hosts must name at least one host or IP address")
    out = Path(directory) if directory is not None else Path(tempfile.mkdtemp(prefix="mockstack-tls-"))
    out.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    not_before, not_after = now - dt.timedelta(minutes=5), now + dt.timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"{name} test CA")
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    cert = (
        x509.CertificateBuilder().subject_name(_name(hosts[0])).issuer_name(ca_name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM).decode()
    ca_path, cert_path, key_path = (out / f"{name}-ca.pem", out / f"{name}-cert.pem", out / f"{name}-key.pem")
    ca_path.write_text(ca_pem)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    return TLSMaterial(str(ca_path), str(cert_path), str(key_path), ca_pem)

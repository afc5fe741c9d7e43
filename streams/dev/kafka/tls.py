"""Throwaway TLS material and SASL users for a test broker's secured listeners."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a throwaway PKI: a CA, the broker's certificate and a client certificate (keys unencrypted)."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _random_password() -> str:
    return secrets.token_urlsafe(18)


@dataclass(frozen=True)
class KafkaSecurity:
    """Extra client listeners for :class:`LocalKafka` (the PLAINTEXT listener stays as it is).

    * ``SASL_SSL``: PLAIN and SCRAM-SHA-256/512 for ``users`` (name -> password; SCRAM credentials are
      written at format time), and OAUTHBEARER with Kafka's built-in *unsecured* JWS validator (it accepts an
      unsigned ``alg: none`` JWT whose ``sub`` is the principal and whose ``exp`` is in the future; test
      brokers only);
    * ``SSL`` with ``ssl.client.auth=required``: the client must present a certificate signed by the CA.

    Both listeners serve the certificate of a CA generated at start; :attr:`LocalKafka.tls` holds its files.
    """

    users: Mapping[str, str] = field(default_factory=lambda: {"alice": _random_password()})
    mechanisms: tuple[str, ...] = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")


def generate_tls_files(
    directory: str | Path, *, hosts: tuple[str, ...] = ("127.0.0.1", "localhost"), name: str = "s2s-test"
) -> TlsFiles:
    """A fresh CA (``<name> CA``), a server certificate for ``hosts`` and a client certificate, as PEM files.

    Valid from an hour ago for two days; EC P-256 keys. Needs the ``cryptography`` package.
    """
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    not_before, not_after = now - dt.timedelta(hours=1), now + dt.timedelta(days=2)

    def key() -> ec.EllipticCurvePrivateKey:
        return ec.generate_private_key(ec.SECP256R1())

    def subject(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, name), x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = key()
    ca_name = subject(f"{name} CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )  # keyCertSign, cRLSign
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(cn: str, usage: x509.ObjectIdentifier, sans: list[x509.GeneralName]) -> tuple[Any, Any]:
        k = key()
        b = (
            x509.CertificateBuilder()
            .subject_name(subject(cn))
            .issuer_name(ca_name)
            .public_key(k.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        )
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return k, b.sign(ca_key, hashes.SHA256())

    sans: list[x509.GeneralName] = []
    for h in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            sans.append(x509.DNSName(h))
    server_key, server_cert = leaf("kafka-broker", ExtendedKeyUsageOID.SERVER_AUTH, sans)
    client_key, client_cert = leaf("s2s-bridge-client", ExtendedKeyUsageOID.CLIENT_AUTH, [])

    def write(fname: str, data: bytes, private: bool = False) -> Path:
        path = d / fname
        path.write_bytes(data)
        if private:
            path.chmod(0o600)
        return path

    def pem_key(k: Any) -> bytes:
        return bytes(k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))

    def pem_cert(c: Any) -> bytes:
        return bytes(c.public_bytes(serialization.Encoding.PEM))

    return TlsFiles(
        ca_cert=write("ca.pem", pem_cert(ca_cert)),
        server_cert=write("server.pem", pem_cert(server_cert)),
        server_key=write("server.key", pem_key(server_key), private=True),
        client_cert=write("client.pem", pem_cert(client_cert)),
        client_key=write("client.key", pem_key(client_key), private=True),
    )

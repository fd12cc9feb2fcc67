"""Throwaway lab PKI for demos and tests: a CA, a broker certificate and client certificates.

NEVER use this for production. The keys are unencrypted, the CA key sits next to the
certificates it signs, there is no revocation and nothing is audited. Real homes get their
certificates from the provisioning process, not from here.

It owns one directory (created 0700) and the files in it: `ca.crt`, `ca.key`, `broker.crt`,
`broker.key` and `<name>.crt` / `<name>.key` per client. Private keys are created at mode 0600
with O_EXCL, so they are never readable by others, not even for an instant. It never talks to
the network and never prints or logs key material.

Certificates use EC P-256 keys (fast to generate) and SHA-256 signatures, and carry the
extensions (BasicConstraints, KeyUsage, ExtendedKeyUsage, SubjectKeyIdentifier,
AuthorityKeyIdentifier) that OpenSSL 3 and Python's `ssl` insist on, also in strict mode.
"""

import datetime
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_NAME = "Trygg lab CA - NOT FOR PRODUCTION"
BROKER_NAME = "localhost"
RESERVED = {"ca", "broker"}
# A client name becomes a file name, a certificate CN and (via use_identity_as_username) the
# MQTT username that the broker's ACL pattern puts into topics: keep it boring.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
CLOCK_SKEW = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class LabPKI:
    """Where the lab PKI's files are; the CA key is `directory / "ca.key"`."""

    directory: Path
    ca: Path
    broker_cert: Path
    broker_key: Path

    def client(self, name: str) -> tuple[Path, Path]:
        """(certificate, key) paths of client `name`; raises if it was never issued."""
        cert, key = self.directory / f"{_check_name(name)}.crt", self.directory / f"{name}.key"
        if not (cert.exists() and key.exists()):
            raise FileNotFoundError(
                f"no lab certificate for client {name!r} in {self.directory}; use add_client()"
            )
        return cert, key


def make_lab_pki(
    directory: Path, clients: Iterable[str], days: int = 30, overwrite: bool = False
) -> LabPKI:
    """Create a fresh CA, broker certificate and one certificate per client name.

    With overwrite=True every `*.crt` and `*.key` already in the directory is deleted first,
    so no certificate of the old CA is left behind to confuse anyone.
    """
    directory = Path(directory)
    names = [_check_name(name) for name in clients]
    if (directory / "ca.crt").exists() and not overwrite:
        raise FileExistsError(
            f"{directory} already holds a lab CA (ca.crt); pass overwrite=True to replace it"
        )
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)  # the directory may have existed with a looser mode
    if overwrite:
        for stale in [*directory.glob("*.crt"), *directory.glob("*.key")]:
            stale.unlink()

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = _ca_certificate(ca_key, days)
    pki = LabPKI(directory, directory / "ca.crt", directory / "broker.crt", directory / "broker.key")
    _write_key(pki.directory / "ca.key", ca_key)
    _write_cert(pki.ca, ca_cert)

    broker_key = ec.generate_private_key(ec.SECP256R1())
    san = x509.SubjectAlternativeName(
        [
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ]
    )
    broker = _leaf_certificate(
        BROKER_NAME, broker_key, ca_cert, ca_key, days, ExtendedKeyUsageOID.SERVER_AUTH, san
    )
    _write_key(pki.broker_key, broker_key)
    _write_cert(pki.broker_cert, broker)

    for name in names:
        _issue_client(pki, name, ca_cert, ca_key, days)
    return pki


def add_client(pki: LabPKI, name: str, days: int = 30) -> tuple[Path, Path]:
    """Issue one more client certificate from the existing lab CA; returns (cert, key)."""
    _check_name(name)
    ca_cert = x509.load_pem_x509_certificate(pki.ca.read_bytes())
    ca_key = serialization.load_pem_private_key((pki.directory / "ca.key").read_bytes(), None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{pki.directory / 'ca.key'} is not an EC key made by make_lab_pki")
    return _issue_client(pki, name, ca_cert, ca_key, days)


def _check_name(name: str) -> str:
    """Why: the name ends up in a file path and in MQTT topics through the broker ACL."""
    if not NAME_RE.fullmatch(name) or name in RESERVED:
        raise ValueError(
            f"bad lab client name {name!r}: use letters, digits, '.', '_' or '-' "
            f"(not {sorted(RESERVED)})"
        )
    return name


def _issue_client(
    pki: LabPKI,
    name: str,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    days: int,
) -> tuple[Path, Path]:
    cert_path, key_path = pki.directory / f"{name}.crt", pki.directory / f"{name}.key"
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _leaf_certificate(name, key, ca_cert, ca_key, days, ExtendedKeyUsageOID.CLIENT_AUTH)
    _write_key(key_path, key)
    _write_cert(cert_path, cert)
    return cert_path, key_path


def _validity(days: int) -> tuple[datetime.datetime, datetime.datetime]:
    """Backdated a little so a machine whose clock lags by minutes still accepts it."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now - CLOCK_SKEW, now + datetime.timedelta(days=days)


def _ca_certificate(key: ec.EllipticCurvePrivateKey, days: int) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    start, end = _validity(days)
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            _key_usage(ca=True),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def _key_usage(ca: bool) -> x509.KeyUsage:
    """Signatures for everyone (TLS with EC keys); certificate and CRL signing for the CA only."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _leaf_certificate(
    common_name: str,
    key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    days: int,
    usage: x509.ObjectIdentifier,
    san: x509.SubjectAlternativeName | None = None,
) -> x509.Certificate:
    start, end = _validity(days)
    public = key.public_key()
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _key_usage(ca=False),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
    )
    if san is not None:
        builder = builder.add_extension(san, critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """Created 0600 with O_EXCL: never briefly readable by others, never silently replaced."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _create(path, pem, 0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    _create(path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _create(path: Path, data: bytes, mode: int) -> None:
    """Why O_EXCL: never write through a file (or symlink) that is already there."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise FileExistsError(f"{path} already exists; refusing to replace it") from None
    with os.fdopen(fd, "wb") as f:
        if mode & 0o044:
            os.fchmod(f.fileno(), mode)  # certificates are public: undo a strict umask
        f.write(data)

"""Doctor: the device's TLS certificates, read with cryptography.x509.

The CA (broker.ca) must be a CA and valid; the client certificate (broker.cert) must be issued
by it, valid now, for client authentication (EKU clientAuth), with CN = the home id (the broker's
ACL takes the CN as the user name) and match its private key (broker.key). A certificate with
fewer than WARN_DAYS left is a warning: renew it before the home goes silent. The broker's own
certificate (its SAN) is checked by the TLS handshake in checks_broker.py.
"""

from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from base.doctor import Verdict, failed, passed, warned

WARN_DAYS = 30
RENEW = "renew it (docs/operations.md, certificates) and restart trygg"


def check_certificates(cfg, now: datetime, warn_days: int = WARN_DAYS, section: str = "broker") -> list[Verdict]:
    broker = getattr(cfg, section)
    try:
        cas = x509.load_pem_x509_certificates(broker.ca.read_bytes())
    except (OSError, ValueError) as exc:
        return [failed(f"certificate {section}.ca", f"{broker.ca}: not a readable PEM certificate ({exc})",
                       f"copy the municipality's CA certificate (PEM) to {section}.ca")]
    verdicts = [_validity(f"certificate {section}.ca", broker.ca, cas[0], now, warn_days, _ca_problem(cas[0]))]
    try:
        cert = x509.load_pem_x509_certificate(broker.cert.read_bytes())
    except (OSError, ValueError) as exc:
        return verdicts + [failed(f"certificate {section}.cert", f"{broker.cert}: not a readable PEM certificate ({exc})",
                                  f"copy this home's client certificate (PEM) to {section}.cert")]
    problem = _issuer_problem(cert, cas) or _client_problem(cert, cfg.home.id) or _key_problem(cert, broker.key)
    verdicts.append(_validity(f"certificate {section}.cert", broker.cert, cert, now, warn_days, problem))
    return verdicts


def _validity(check: str, path, cert: x509.Certificate, now: datetime, warn_days: int,
              problem: tuple[str, str] | None) -> Verdict:
    """problem: (what is wrong, its fix) found before the dates, which are checked here."""
    name = _cn(cert) or str(cert.subject.rfc4514_string())
    if problem:
        return failed(check, f"{path} ({name}): {problem[0]}", problem[1])
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now < start:
        return failed(check, f"{path} ({name}) is valid only from {start:%Y-%m-%d %H:%M} UTC",
                      "check this device's clock (timedatectl), or reissue the certificate")
    if now > end:
        return failed(check, f"{path} ({name}) expired on {end:%Y-%m-%d}", RENEW)
    days = (end - now).total_seconds() / 86400
    detail = f"{path} ({name}) valid until {end:%Y-%m-%d}, {days:.0f} days left"
    if days < warn_days:
        return warned(check, detail, RENEW)
    return passed(check, detail)


def _ca_problem(ca: x509.Certificate) -> tuple[str, str] | None:
    try:
        if ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return None
    except x509.ExtensionNotFound:
        pass
    return "is not a CA certificate (no BasicConstraints CA:TRUE)", "broker.ca must name the CA certificate, not a leaf"


def _issuer_problem(cert: x509.Certificate, cas: list[x509.Certificate]) -> tuple[str, str] | None:
    for ca in cas:
        try:
            cert.verify_directly_issued_by(ca)
            return None
        except (ValueError, TypeError, InvalidSignature):
            continue
    return (f"not issued by the CA in broker.ca (issuer {cert.issuer.rfc4514_string()})",
            "use the certificate the municipality's CA issued for this home, or the matching broker.ca")


def _client_problem(cert: x509.Certificate, home: str) -> tuple[str, str] | None:
    try:
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usages = None
    if usages is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
        return ("is not for client authentication (no clientAuth in extendedKeyUsage)",
                "reissue it with extendedKeyUsage = clientAuth")
    if _cn(cert) != home:
        return (f"CN is {_cn(cert)!r}, not the home id {home!r}: the broker's ACL gives it another home's topics",
                f"reissue it with CN = {home}")
    return None


def _key_problem(cert: x509.Certificate, key_path) -> tuple[str, str] | None:
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    except TypeError:
        return "its key broker.key has a passphrase, which the service cannot type", "store the key unencrypted, 0600"
    except (OSError, ValueError) as exc:
        return f"its key broker.key ({key_path}) is not a readable PEM private key ({exc})", "copy the matching key"
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(*raw) != cert.public_key().public_bytes(*raw):
        return f"does not match its key broker.key ({key_path})", "put the key this certificate was issued for in broker.key"
    return None


def _cn(cert: x509.Certificate) -> str | None:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None

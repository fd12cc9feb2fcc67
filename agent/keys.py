"""Key files: generate, write (0600, never overwritten by accident) and load identities.

An identity (a home's device or the care center) is an Ed25519 signing key plus an HPKE
key (kem.py). Private files are JSON with base64 raw keys, created with O_EXCL at mode 0600;
loading refuses a private file that group or others can read, because a leaked device key
lets anyone forge that home's alarms. Public files are what technicians carry between the
center and devices. This module never logs or prints key material.
"""

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

from .errors import KeyFileError
from .protocol.kem import KEM_NAMES, SUITE_IDS, KemPrivate, KemPublic

PRIVATE_FORMAT = "trygg-private-key-v1"
PUBLIC_FORMAT = "trygg-public-key-v1"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _unb64(text: object, what: str, path: Path) -> bytes:
    try:
        return base64.b64decode(str(text), validate=True)
    except ValueError:
        raise KeyFileError(f"{path}: {what} is not valid base64") from None


@dataclass(frozen=True)
class PublicIdentity:
    """What others need to verify our signatures and seal messages to us."""

    name: str
    sign: ed25519.Ed25519PublicKey
    kem: KemPublic

    def to_json(self) -> dict:
        return {
            "format": PUBLIC_FORMAT,
            "name": self.name,
            "sign": _b64(self.sign.public_bytes_raw()),
            "kem": SUITE_IDS[self.kem.suite_id],
            "kem_public": _b64(self.kem.raw),
        }


@dataclass(frozen=True)
class Identity:
    """Our own private keys: the signing key and the HPKE key others seal to."""

    name: str
    sign: ed25519.Ed25519PrivateKey
    kem: KemPrivate

    @classmethod
    def generate(cls, name: str, kem_name: str = "x25519") -> "Identity":
        return cls(name, ed25519.Ed25519PrivateKey.generate(), KemPrivate.generate(kem_name))

    def public(self) -> PublicIdentity:
        return PublicIdentity(self.name, self.sign.public_key(), self.kem.public)

    def __repr__(self) -> str:
        return f"Identity(name={self.name!r}, keys=<redacted>)"


def write_private(identity: Identity, path: Path, force: bool = False) -> None:
    """Write the private key file at 0600; refuse to replace an existing one unless force."""
    data = json.dumps(
        {
            "format": PRIVATE_FORMAT,
            "name": identity.name,
            "sign": _b64(identity.sign.private_bytes_raw()),
            "kem": SUITE_IDS[identity.kem.suite_id],
            "kem_private": _b64(identity.kem.raw),
        },
        indent=1,
    ).encode()
    write_secret_file(path, data, force)


def write_secret_file(path: Path, data: bytes, force: bool = False) -> None:
    """Create path with mode 0600 (never wider, not even for an instant)."""
    path = Path(path)
    if path.exists() and not force:
        raise KeyFileError(f"{path} already exists; use --force to replace it")
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_public(public: PublicIdentity, path: Path, force: bool = False) -> None:
    path = Path(path)
    if path.exists() and not force:
        raise KeyFileError(f"{path} already exists; use --force to replace it")
    path.write_text(json.dumps(public.to_json(), indent=1) + "\n")


def _read_json(path: Path) -> object:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise KeyFileError(f"{path}: key file not found") from None
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"{path}: not a readable Trygg key file ({exc})") from None


def load_private(path: Path) -> Identity:
    """Load our identity; refuse a file that anyone but the owner can read."""
    path = Path(path)
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        raise KeyFileError(f"{path}: key file not found") from None
    if mode & 0o077:
        raise KeyFileError(f"{path}: private key is readable by others (mode {mode:o}); run chmod 600 {path}")
    return _parse(_read_json(path), path, PRIVATE_FORMAT, Identity, ed25519.Ed25519PrivateKey.from_private_bytes,
                  KemPrivate, "kem_private")


def load_public(path: Path) -> PublicIdentity:
    """Load a public identity handed over by a technician."""
    return parse_public(_read_json(path), path)


def parse_public(data: object, source) -> PublicIdentity:
    """A public identity from its JSON form (a .pub file's content); source names it in errors."""
    return _parse(data, source, PUBLIC_FORMAT, PublicIdentity, ed25519.Ed25519PublicKey.from_public_bytes, KemPublic,
                  "kem_public")


def _parse(data: object, path, fmt: str, identity_cls, sign_from_bytes, kem_cls, kem_field: str):
    """Check a key file's JSON of either kind; every malformed value becomes a KeyFileError naming the file."""
    if not isinstance(data, dict) or data.get("format") != fmt:
        raise KeyFileError(f"{path}: expected a {fmt} file")
    if data.get("kem") not in KEM_NAMES:
        raise KeyFileError(f"{path}: kem must be one of {', '.join(KEM_NAMES)}, got {data.get('kem')!r}")
    try:
        sign = sign_from_bytes(_unb64(data.get("sign"), "sign", path))
        kem = kem_cls(KEM_NAMES[data["kem"]], _unb64(data.get(kem_field), kem_field, path))
    except ValueError as exc:
        raise KeyFileError(f"{path}: {exc}") from None
    return identity_cls(str(data.get("name", "")), sign, kem)

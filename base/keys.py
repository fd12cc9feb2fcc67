"""Key files: generate, write (0600, never overwritten by accident) and load identities.

An identity (a home's device or the care center) is an Ed25519 signing key plus an HPKE
key (kem.py). Private files are JSON with base64 raw keys, created with O_EXCL at mode 0600;
loading refuses a private file that group or others can read, because a leaked device key
lets anyone forge that home's alarms. Public files are what technicians carry between the
center and devices. This module never logs or prints key material.

Also the two things both sides need about private files at rest:
- `check_private`: a key or database file must be 0600 (0640 is accepted when its group is
  the service's own group); the daemon and the receiver refuse to start otherwise, naming the
  file, its mode and the chmod to run. `create_private` makes such a file 0600 from the start
  (SQLite then gives its -wal and -shm files the database file's mode).
- `seal_at_rest` / `open_at_rest`: a record sealed to a recipient's HPKE key for storage, the
  same HPKE single-shot as the envelope (protocol/envelope.py, kem.py) with its own context
  string, and no signature: what is stored is protected by the store's own integrity (the
  audit's hash chain), and what travels is inside a signed envelope.

      0   1  version            0x01
      1   1  suite id           as the envelope's
      2   8  recipient key id   SHA-256(recipient public key)[:8]
      10  .. HPKE single-shot   enc || ciphertext;  info = b"trygg/v1 rest\x00" + context
                                + b"\x00" + bytes 0..9
"""

import base64
import json
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

from protocol.envelope import signer_kid
from protocol.kem import KEM_NAMES, SUITE_IDS, KemPrivate, KemPublic, suite
from protocol.names import STAFF_NAME_RULE, is_staff_name

from .errors import ConfigError, KeyFileError

_REST_HEADER = struct.Struct(">BB8s")
_REST_CTX = b"trygg/v1 rest\x00"

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
    if not path.exists():
        raise KeyFileError(f"{path}: key file not found")
    check_private(path, "private key")
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


# -- private files at rest ----------------------------------------------------------------------
def check_private(path: Path, what: str = "private file") -> None:
    """Refuse a key or database file that others can read or anyone but the owner can write.

    0600 always passes; 0640 passes when the file's group is this process's own group (the
    service group, e.g. a root-owned file the trygg user reads). A missing file passes: it will
    be created 0600. The message names the file, its mode and the chmod that fixes it.
    """
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        return
    mode = stat.S_IMODE(st.st_mode)
    group_read_ok = st.st_gid == os.getegid() and not mode & 0o030
    if mode & 0o007 or (mode & 0o070 and not (group_read_ok and mode & 0o070 == 0o040)):
        raise KeyFileError(f"{path}: {what} is readable by others (mode {mode:o}); run chmod 600 {path}")


def check_database(path: Path, what: str = "database") -> None:
    """check_private for an SQLite file and the -wal / -shm files beside it."""
    path = Path(path)
    for each in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        check_private(each, what)


def create_private(path: Path) -> None:
    """Create path empty at 0600 if it does not exist (never widen an existing file).

    An existing file is never opened here: closing any descriptor of an SQLite file drops every
    POSIX lock this process holds on it, so another process could then checkpoint and remove
    the WAL under our open connections, and what they commit would be lost.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def seal_at_rest(recipient: KemPublic, plain: bytes, context: str) -> bytes:
    """Seal a record for storage to the recipient's HPKE key, bound to context (see the module doc)."""
    header = _REST_HEADER.pack(1, recipient.suite_id, recipient.kid)
    info = _REST_CTX + context.encode() + b"\x00" + header
    return header + suite(recipient.suite_id).encrypt(plain, recipient.hpke_key, info=info)


def open_at_rest(keys: list[KemPrivate], sealed: bytes, context: str) -> bytes:
    """Open a record sealed by seal_at_rest with one of our keys; KeyFileError when none fits."""
    sealed = bytes(sealed)
    if len(sealed) <= _REST_HEADER.size:
        raise KeyFileError("sealed record too short")
    version, suite_id, kid = _REST_HEADER.unpack_from(sealed)
    key = next((k for k in keys if k.suite_id == suite_id and k.public.kid == kid), None)
    if version != 1 or key is None:
        raise KeyFileError(f"sealed record for a key we do not hold ({kid.hex()}, suite {suite_id})")
    info = _REST_CTX + context.encode() + b"\x00" + sealed[: _REST_HEADER.size]
    try:
        return suite(suite_id).decrypt(sealed[_REST_HEADER.size :], key.hpke_key, info=info)
    except Exception:  # InvalidTag or ValueError for a tampered or truncated record
        raise KeyFileError("sealed record does not open (tampered, or sealed for another record)") from None


def check_name(name: str) -> str:
    """A staff member's name, as keys, commands and the audit carry it (protocol/names.py)."""
    if not is_staff_name(name):
        raise ConfigError(f"staff name must be {STAFF_NAME_RULE}, got {name!r}")
    return name


def center_kid(public: PublicIdentity) -> str:
    """A center key's id as the device and the center show it."""
    return signer_kid(public.sign).hex()

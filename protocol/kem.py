"""HPKE key pairs for the two suites Trygg speaks, as raw bytes in and out.

Suite 1 (default): DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305.
Suite 2 (post-quantum hybrid): ML-KEM-768 + X25519, HKDF-SHA256, ChaCha20-Poly1305.
ChaCha20-Poly1305 because the Raspberry Pi 3/4 CPUs have no AES instructions.
All HPKE itself is cryptography's (`hazmat.primitives.hpke`); nothing here is hand-rolled crypto.
"""

import hashlib
from dataclasses import dataclass
from functools import cached_property

from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

KEM_NAMES = {"x25519": 1, "mlkem768-x25519": 2}
SUITE_IDS = {v: k for k, v in KEM_NAMES.items()}
_SUITES = {
    1: hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305),
    2: hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305),
}
_RAW = serialization.Encoding.Raw
_X_PRIV_LEN, _X_PUB_LEN, _ML_SEED_LEN, _ML_PUB_LEN = 32, 32, 64, 1184


def key_id(public_raw: bytes) -> bytes:
    """8-byte fingerprint of a public key, carried in messages to pick the right key."""
    return hashlib.sha256(public_raw).digest()[:8]


def suite(suite_id: int) -> hpke.Suite:
    try:
        return _SUITES[suite_id]
    except KeyError:
        raise ValueError(f"unknown HPKE suite id {suite_id}") from None


@dataclass(frozen=True)
class KemPublic:
    """A recipient's public key: what a sender needs to seal to it."""

    suite_id: int
    raw: bytes

    def __post_init__(self) -> None:
        expected = {1: _X_PUB_LEN, 2: _ML_PUB_LEN + _X_PUB_LEN}.get(self.suite_id)
        if expected is None or len(self.raw) != expected:
            raise ValueError(f"bad public key for suite {self.suite_id}: {len(self.raw)} bytes")

    @cached_property
    def kid(self) -> bytes:
        return key_id(self.raw)

    @cached_property
    def hpke_key(self):
        if self.suite_id == 1:
            return x25519.X25519PublicKey.from_public_bytes(self.raw)
        return hpke.MLKEM768X25519PublicKey(
            mlkem.MLKEM768PublicKey.from_public_bytes(self.raw[:_ML_PUB_LEN]),
            x25519.X25519PublicKey.from_public_bytes(self.raw[_ML_PUB_LEN:]),
        )


@dataclass(frozen=True)
class KemPrivate:
    """A recipient's private key (raw: X25519 scalar, or ML-KEM seed followed by X25519 scalar)."""

    suite_id: int
    raw: bytes

    @classmethod
    def generate(cls, kem_name: str = "x25519") -> "KemPrivate":
        suite_id = KEM_NAMES[kem_name]
        x = x25519.X25519PrivateKey.generate().private_bytes_raw()
        if suite_id == 1:
            return cls(1, x)
        return cls(2, mlkem.MLKEM768PrivateKey.generate().private_bytes_raw() + x)

    def __post_init__(self) -> None:
        expected = {1: _X_PRIV_LEN, 2: _ML_SEED_LEN + _X_PRIV_LEN}.get(self.suite_id)
        if expected is None or len(self.raw) != expected:
            raise ValueError(f"bad private key for suite {self.suite_id}")

    @cached_property
    def hpke_key(self):
        if self.suite_id == 1:
            return x25519.X25519PrivateKey.from_private_bytes(self.raw)
        return hpke.MLKEM768X25519PrivateKey(
            mlkem.MLKEM768PrivateKey.from_seed_bytes(self.raw[:_ML_SEED_LEN]),
            x25519.X25519PrivateKey.from_private_bytes(self.raw[_ML_SEED_LEN:]),
        )

    @cached_property
    def public(self) -> KemPublic:
        if self.suite_id == 1:
            return KemPublic(1, self.hpke_key.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw))
        ml = mlkem.MLKEM768PrivateKey.from_seed_bytes(self.raw[:_ML_SEED_LEN]).public_key()
        x = x25519.X25519PrivateKey.from_private_bytes(self.raw[_ML_SEED_LEN:]).public_key()
        return KemPublic(2, ml.public_bytes_raw() + x.public_bytes_raw())

    def __repr__(self) -> str:  # never print key material
        return f"KemPrivate(suite_id={self.suite_id}, raw=<redacted>)"

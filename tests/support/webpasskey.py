"""A software passkey for the console's API tests: an ES256 authenticator written from the WebAuthn
spec with `cryptography` and a few lines of CBOR, independent of the py_webauthn the server uses.

`create()` answers navigator.credentials.create() (attestation "none"), `get()` answers
navigator.credentials.get() (authenticatorData + SHA-256(clientDataJSON), signed), both in the
JSON form the page sends. Flags, counter and origin are arguments, so tests can make the answers
a stolen phone without its PIN, a copied passkey or a phishing page would give.
"""

import base64
import hashlib
import json
import secrets
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

UP, UV, AT = 0x01, 0x04, 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def cbor(value) -> bytes:
    """CBOR (RFC 8949) for what WebAuthn needs: ints, byte and text strings, maps."""
    def head(major: int, n: int) -> bytes:
        if n < 24:
            return bytes([major << 5 | n])
        for extra, fmt in ((24, ">B"), (25, ">H"), (26, ">I"), (27, ">Q")):
            if n < 1 << (8 * struct.calcsize(fmt)):
                return bytes([major << 5 | extra]) + struct.pack(fmt, n)
        raise ValueError(n)
    if isinstance(value, bool) or value is None:
        raise TypeError(value)
    if isinstance(value, int):
        return head(0, value) if value >= 0 else head(1, -1 - value)
    if isinstance(value, bytes):
        return head(2, len(value)) + value
    if isinstance(value, str):
        return head(3, len(value.encode())) + value.encode()
    if isinstance(value, dict):
        return head(5, len(value)) + b"".join(cbor(k) + cbor(v) for k, v in value.items())
    raise TypeError(value)


class SoftPasskey:
    """One passkey on one authenticator: its key, credential id and signature counter."""

    def __init__(self, counter: int = 0) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.id = secrets.token_bytes(16)
        self.counter = counter

    @property
    def id64(self) -> str:
        return b64url(self.id)

    def _cose(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})

    @staticmethod
    def _client_data(kind: str, challenge: bytes, origin: str) -> bytes:
        return json.dumps({"type": kind, "challenge": b64url(challenge), "origin": origin,
                           "crossOrigin": False}).encode()

    def create(self, options: dict, origin: str, flags: int = UP | UV) -> dict:
        """The answer to registration options as the server sent them (publicKey)."""
        rp_hash = hashlib.sha256(options["rp"]["id"].encode()).digest()
        attested = bytes(16) + struct.pack(">H", len(self.id)) + self.id + self._cose()
        auth_data = rp_hash + bytes([flags | AT]) + struct.pack(">I", self.counter) + attested
        client_data = self._client_data("webauthn.create", unb64url(options["challenge"]), origin)
        attestation = cbor({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {"id": self.id64, "rawId": self.id64, "type": "public-key", "clientExtensionResults": {},
                "response": {"clientDataJSON": b64url(client_data), "attestationObject": b64url(attestation),
                             "transports": ["internal"]}}

    def get(self, options: dict, origin: str, flags: int = UP | UV, rp_id: str | None = None,
            counter_step: int = 1) -> dict:
        """The answer to sign-in options (publicKey): the counter moves on by counter_step."""
        self.counter += counter_step
        rp_hash = hashlib.sha256((rp_id or options["rpId"]).encode()).digest()
        auth_data = rp_hash + bytes([flags]) + struct.pack(">I", self.counter)
        client_data = self._client_data("webauthn.get", unb64url(options["challenge"]), origin)
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return {"id": self.id64, "rawId": self.id64, "type": "public-key", "clientExtensionResults": {},
                "response": {"clientDataJSON": b64url(client_data), "authenticatorData": b64url(auth_data),
                             "signature": b64url(signature)}}

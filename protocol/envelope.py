"""The envelope: sign with Ed25519, pad, then seal with HPKE to the recipient, bound to the topic.

Sealed envelope (the MQTT payload), all integers big-endian:

    0   1  version            0x02 (0x01: unpadded, still opened, never sealed; see below)
    1   1  suite id           0x01 X25519, 0x02 ML-KEM-768+X25519 (see kem.py)
    2   8  recipient key id   SHA-256(recipient public key)[:8]
    10  .. HPKE single-shot   enc || AEAD ciphertext of the padded signed message
           info = b"trygg/v1 seal\\x00" + topic + b"\\x00" + bytes 0..9 of this header

Padded signed message (the HPKE plaintext, padding.py): a 4-byte length n, the signed message
(n bytes), then zero bytes so that the whole envelope is one of padding.SIZES - so a fall and a
missed dose are the same length on the broker. Signed message:

    0   8  signer key id      SHA-256(Ed25519 public key)[:8]
    8   64 Ed25519 signature  over b"trygg/v1 sign\\x00" + topic + b"\\x00" + body
    72  .. body               UTF-8 JSON (messages.py)

The topic names the home, so both the seal and the signature bind home and topic: a message
moved to another home or topic fails to open. The same signature framing, without the seal,
is used for presence messages that carry no personal data (`sign` / `verify`).
Version 1 (the same without the length and padding) is still opened so that envelopes sealed
before an upgrade - an alarm waiting in a device's outbox - are delivered; nothing seals it.
This module never does I/O and never returns unverified bytes.
"""

import struct
from dataclasses import dataclass
from typing import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from .errors import EnvelopeError
from . import padding
from .kem import KemPrivate, KemPublic, key_id, suite

VERSION = 2  # padded (padding.py)
LEGACY_VERSION = 1  # unpadded: opened, never sealed
HEADER = struct.Struct(">BB8s")
SIG_LEN = 64
MAX_ENVELOPE = 1 << 20  # 1 MiB: anything larger is refused before any crypto runs
assert padding.MAX_SIZE == MAX_ENVELOPE
_SEAL_CTX = b"trygg/v1 seal\x00"
_SIGN_CTX = b"trygg/v1 sign\x00"

SignerLookup = Callable[[bytes], ed25519.Ed25519PublicKey | None]


@dataclass(frozen=True)
class Opened:
    """A message that opened and verified: the body bytes and which key signed it."""

    body: bytes
    signer_kid: bytes
    version: int = VERSION  # of the envelope it came in (verify: the current one)


def signer_kid(public: ed25519.Ed25519PublicKey) -> bytes:
    return key_id(public.public_bytes_raw())


def _signed_bytes(topic: str, body: bytes) -> bytes:
    return _SIGN_CTX + topic.encode() + b"\x00" + body


def sign(body: bytes, topic: str, signer: ed25519.Ed25519PrivateKey) -> bytes:
    """Signer key id + signature + body, bound to the topic."""
    return signed_message(signer.public_key(), signer.sign(_signed_bytes(topic, body)), body)


def signing_input(topic: str, body: bytes) -> bytes:
    """What a signer signs: for a key held elsewhere (a staff member's browser), which signs this
    and hands back only the signature."""
    return _signed_bytes(topic, body)


def signed_message(public: ed25519.Ed25519PublicKey, signature: bytes, body: bytes) -> bytes:
    """The signed form of body, from a signature made over signing_input(topic, body)."""
    if len(signature) != SIG_LEN:
        raise EnvelopeError(f"a signature is {SIG_LEN} bytes, not {len(signature)}", code="bad_signature")
    return signer_kid(public) + signature + body


def verify(signed: bytes, topic: str, lookup: SignerLookup) -> Opened:
    """Check a signed message; raise EnvelopeError unless a known key signed it for this topic."""
    if not isinstance(signed, (bytes, bytearray)) or len(signed) < 8 + SIG_LEN:
        raise EnvelopeError("signed message too short", code="too_short")
    try:
        topic.encode()
    except UnicodeEncodeError:
        raise EnvelopeError("topic is not UTF-8", code="not_bytes") from None
    kid, sig, body = signed[:8], signed[8 : 8 + SIG_LEN], signed[8 + SIG_LEN :]
    public = lookup(kid)
    if public is None:
        raise EnvelopeError(f"signed by an unknown key {kid.hex()}", code="unknown_signer")
    try:
        public.verify(sig, _signed_bytes(topic, body))
    except InvalidSignature:
        raise EnvelopeError("bad signature", code="bad_signature") from None
    return Opened(body, kid)


def seal(body: bytes, topic: str, signer: ed25519.Ed25519PrivateKey, recipient: KemPublic) -> bytes:
    """Sign body with the sender's key, pad it and seal it to the recipient, bound to topic.

    The result is exactly one of padding.SIZES long (EnvelopeError if the message is too large
    for the largest); every sender gets the padding here, none needs to think about it.
    """
    return seal_signed(sign(body, topic, signer), topic, recipient)


def seal_signed(signed: bytes, topic: str, recipient: KemPublic) -> bytes:
    """Pad and seal an already signed message (sign, or signed_message) to the recipient."""
    header = HEADER.pack(VERSION, recipient.suite_id, recipient.kid)
    info = _SEAL_CTX + topic.encode() + b"\x00" + header
    plain = padding.pad(signed, recipient.suite_id, topic)
    sealed = header + suite(recipient.suite_id).encrypt(plain, recipient.hpke_key, info=info)
    assert len(sealed) == len(plain) + padding.overhead(recipient.suite_id)  # the suites' enc lengths
    return sealed


def open_sealed(data: bytes, topic: str, recipients: list[KemPrivate], lookup: SignerLookup) -> Opened:
    """Open and verify an envelope with one of our private keys; raise EnvelopeError otherwise."""
    try:
        data = bytes(data)
        topic.encode()
    except (TypeError, UnicodeEncodeError):
        raise EnvelopeError("envelope or topic is not bytes / UTF-8", code="not_bytes") from None
    if len(data) < HEADER.size + 1:
        raise EnvelopeError("envelope too short", code="too_short")
    if len(data) > MAX_ENVELOPE:
        raise EnvelopeError(f"envelope of {len(data)} bytes exceeds {MAX_ENVELOPE}", code="too_large")
    version, suite_id, kid = HEADER.unpack_from(data)
    if version not in (VERSION, LEGACY_VERSION):
        raise EnvelopeError(f"unsupported envelope version {version}", code="bad_version")
    if version == VERSION:
        padding.check_size(len(data), topic)
    key = next((k for k in recipients if k.suite_id == suite_id and k.public.kid == kid), None)
    if key is None:
        raise EnvelopeError(f"sealed to a key we do not hold ({kid.hex()}, suite {suite_id})", code="unknown_recipient")
    info = _SEAL_CTX + topic.encode() + b"\x00" + data[: HEADER.size]
    try:
        plain = suite(suite_id).decrypt(data[HEADER.size :], key.hpke_key, info=info)
    except Exception:  # cryptography raises InvalidTag or ValueError for malformed input
        raise EnvelopeError("envelope does not open (tampered, truncated or wrong topic)", code="does_not_open") from None
    opened = verify(padding.unpad(plain) if version == VERSION else plain, topic, lookup)
    return Opened(opened.body, opened.signer_kid, version)

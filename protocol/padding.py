"""Padding inside the seal, so that a sealed message's length does not say what happened.

Sealing hides the contents but not the length, and the length of an unpadded event named its
kind (fall 409 B, help 393 B, dose_missed 440 B). So every version-2 envelope is exactly one of
a few fixed sizes (SIZES), counted over the whole MQTT payload: header, HPKE enc, ciphertext
and tag. The padding is inside the AEAD plaintext, so it is encrypted and authenticated:

    0   4  n                  length of the signed message, big-endian
    4   n  signed message     signer key id || signature || body (envelope.sign)
    4+n ..  zero bytes        up to the chosen size

The sender picks the smallest size that holds the message (pictures on a lookin topic: at least
PICTURE_MIN); the receiver refuses an envelope whose length is not one of the sizes before any
cryptography, and, after the AEAD has opened, a length that overruns the plaintext or a padding
byte that is not zero. This module only computes sizes and frames bytes: no crypto, no I/O.
"""

import struct

from .errors import EnvelopeError

KiB = 1024
# Every message but a picture: events (<= 16 KiB of JSON), acks (<= 1000 ids, ~40 KB), commands
# (<= 8 KiB on the device). 1 KiB is the smallest so that every event a quiet home sends, audit
# entries and command results included, is the same size.
SMALL = (1 * KiB, 2 * KiB, 4 * KiB, 8 * KiB, 16 * KiB, 32 * KiB, 64 * KiB)
# Look-in pictures: coarse, so the JPEG's size (lights on or off, someone in bed or not, which
# privacy filter) does not show; a single 720p frame with any filter fits the first.
PICTURE = (256 * KiB, 512 * KiB, 1024 * KiB)
SIZES = SMALL + PICTURE  # the only envelope lengths of version 2
PICTURE_MIN = PICTURE[0]  # a picture (topic .../lookin) is never smaller than this
MAX_SIZE = SIZES[-1]  # == envelope.MAX_ENVELOPE

LENGTH = struct.Struct(">I")
HEADER_LEN = 10  # version, suite id, recipient key id (envelope.HEADER)
TAG_LEN = 16  # ChaCha20-Poly1305
ENC_LEN = {1: 32, 2: 1088 + 32}  # HPKE enc of each suite (kem.py): X25519; ML-KEM-768 ct + X25519


def overhead(suite_id: int) -> int:
    """Envelope bytes that are not plaintext: header, enc and tag."""
    try:
        return HEADER_LEN + ENC_LEN[suite_id] + TAG_LEN
    except KeyError:
        raise ValueError(f"unknown HPKE suite id {suite_id}") from None


def is_picture_topic(topic: str) -> bool:
    """trygg/v1/<home>/lookin: the one channel that carries pictures."""
    parts = topic.split("/")
    return len(parts) == 4 and parts[:2] == ["trygg", "v1"] and parts[3] == "lookin"


def sizes_for(topic: str) -> tuple[int, ...]:
    """The envelope lengths allowed on this topic."""
    return PICTURE if is_picture_topic(topic) else SIZES


def envelope_size(signed_len: int, suite_id: int, topic: str) -> int:
    """The padded envelope length for a signed message of signed_len bytes; EnvelopeError if none fits."""
    need = overhead(suite_id) + LENGTH.size + signed_len
    for size in sizes_for(topic):
        if need <= size:
            return size
    raise EnvelopeError(f"message of {signed_len} bytes does not fit the largest envelope ({MAX_SIZE} bytes)",
                        code="too_large")


def max_signed(size: int, suite_id: int) -> int:
    """The longest signed message (key id + signature + body) an envelope of `size` bytes holds."""
    return size - overhead(suite_id) - LENGTH.size


def pad(signed: bytes, suite_id: int, topic: str) -> bytes:
    """The AEAD plaintext: length, signed message, zeros up to the envelope size for this topic."""
    size = envelope_size(len(signed), suite_id, topic)
    return LENGTH.pack(len(signed)) + signed + bytes(max_signed(size, suite_id) - len(signed))


def check_size(length: int, topic: str) -> None:
    """Before any crypto: a version-2 envelope is exactly one of the sizes for its topic."""
    if length not in sizes_for(topic):
        allowed = ", ".join(str(s) for s in sizes_for(topic))
        raise EnvelopeError(f"envelope of {length} bytes is not a padded size ({allowed})", code="bad_size")


def unpad(plain: bytes) -> bytes:
    """The signed message inside an opened plaintext; EnvelopeError for malformed padding."""
    if len(plain) < LENGTH.size:
        raise EnvelopeError("malformed padding: no length", code="bad_padding")
    (n,) = LENGTH.unpack_from(plain)
    end = LENGTH.size + n
    if end > len(plain):
        raise EnvelopeError(f"malformed padding: length {n} overruns the {len(plain) - LENGTH.size} bytes sealed",
                            code="bad_padding")
    tail = plain[end:]
    if tail.count(0) != len(tail):
        raise EnvelopeError("malformed padding: non-zero padding byte", code="bad_padding")
    return plain[LENGTH.size : end]

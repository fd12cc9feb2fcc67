"""Generate tests/vectors/envelope_v1.json, the wire-protocol test vectors (docs/protocol.md).

Run once; the JSON is committed and is what tests/test_protocol_vector.py and other
implementations check against. Everything here is deterministic except the HPKE seal, which
draws a fresh ephemeral key each time: the vector records the sealed bytes produced once, so
re-running gives different (equally valid) envelopes. That is why this script refuses to
overwrite the JSON unless given --update (keep every recorded envelope whose plaintext, topic
and recipient are unchanged: only new or changed messages are sealed anew) or --force (seal
everything anew).

    .venv/bin/python tests/vectors/make_vectors.py            # writes the JSON if absent
    .venv/bin/python tests/vectors/make_vectors.py --update   # add to it, keeping recorded envelopes
    .venv/bin/python tests/vectors/make_vectors.py --force    # regenerate (new envelopes)

THE KEYS BELOW ARE THROWAWAY TEST KEYS, published on purpose. Each is the first 32 (or 64)
bytes of SHA-512(b"trygg test vector v1: " + label), with the labels in LABELS. Never enrol
them anywhere.
"""

import argparse
import hashlib
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

from base.keys import PublicIdentity
from protocol import envelope, padding, topics
from protocol.envelope import HEADER, LEGACY_VERSION, VERSION
from protocol.ids import is_valid_id
from protocol.kem import KemPrivate, key_id, suite
from protocol.messages import AckMessage, EventMessage, StatusMessage, decode, encode

OUT = Path(__file__).with_name("envelope_v1.json")

# Fixed input key material (hex). See the module docstring for how each was chosen.
DEVICE_ED25519 = "3d49c1d0b6751a643be8f828abcca0a18806d9d02b90f07ab4e0cb77182c3934"
DEVICE_X25519 = "0a8a2aa0a09b7b97ff03cf1d1f35ca4a11b211a15e58ddeb15dd7fba6e1867e1"
CENTER_ED25519 = "78b42c50dad0dbec9bdb4203d8d5ae6a60dcd1732faaa078741c5b211f8ea615"
CENTER_X25519 = "c74b50f29799386f4c40db21d9cdc5336211900706c04463e2a4b0e080ff5bbd"
CENTER_MLKEM768_SEED = (  # FIPS 203 key-generation seed d || z
    "29b53b9238b49b5c4d4a8a06a5842201c0463c5f19eeeff56467f070fb575960"
    "d3687e15cdb4aa09be30172ae3558b1fae90e95a78db7becfa1297b9c7180c34"
)
CENTER_MLKEM_X25519 = "0c0ca193f39bec905a5c25aea5d3c6defc9cfbca6843a033aa14e8f8710beb7d"
OTHER_ED25519 = "b8081e0f7641c3387b6d19c27bc4f81df68f151923465dd4d7dcbe12e6ddf7e6"  # an unenrolled signer
# The label each seed above is derived from (key name in the JSON -> label, or labels of its parts).
LABELS = {
    "device.sign": "device ed25519", "device.kem_x25519": "device x25519",
    "center.sign": "center ed25519", "center.kem_x25519": "center x25519",
    "center.kem_mlkem768_x25519": {"mlkem768_seed": "center mlkem768 seed", "x25519": "center mlkem x25519"},
    "other.sign": "other ed25519",
}
LABEL_PREFIX = b"trygg test vector v1: "


def derive(label: str, size: int = 32) -> bytes:
    """A throwaway key's seed: the first `size` bytes of SHA-512("trygg test vector v1: " + label)."""
    return hashlib.sha512(LABEL_PREFIX + label.encode()).digest()[:size]


assert derive(LABELS["device.sign"]).hex() == DEVICE_ED25519 and derive(LABELS["device.kem_x25519"]).hex() == DEVICE_X25519
assert derive(LABELS["center.sign"]).hex() == CENTER_ED25519 and derive(LABELS["center.kem_x25519"]).hex() == CENTER_X25519
assert derive(LABELS["center.kem_mlkem768_x25519"]["mlkem768_seed"], 64).hex() == CENTER_MLKEM768_SEED
assert derive(LABELS["center.kem_mlkem768_x25519"]["x25519"]).hex() == CENTER_MLKEM_X25519
assert derive(LABELS["other.sign"]).hex() == OTHER_ED25519


class Recorded:
    """HPKE sealing that reuses an envelope already recorded in the vector file when it seals the
    same plaintext to the same recipient on the same topic (--update), so adding vectors leaves
    the recorded ones byte for byte as they were. Without a previous file it seals anew."""

    def __init__(self) -> None:
        self.by_header: dict[bytes, list[bytes]] = {}
        self.reused = self.sealed = 0

    def remember(self, previous: object) -> None:
        """Every envelope_hex anywhere in a previous vector file."""
        if isinstance(previous, dict):
            for key, value in previous.items():
                if key == "envelope_hex" and isinstance(value, str):
                    data = bytes.fromhex(value)
                    self.by_header.setdefault(data[: HEADER.size], []).append(data)
                else:
                    self.remember(value)
        elif isinstance(previous, list):
            for value in previous:
                self.remember(value)

    def seal(self, plain: bytes, topic: str, recipient: KemPrivate, version: int = VERSION) -> bytes:
        """header || HPKE seal of plain (the whole plaintext: for version 2 already padded)."""
        header = HEADER.pack(version, recipient.suite_id, recipient.public.kid)
        info = _seal_info(topic, header)
        for data in self.by_header.get(header, []):
            try:
                if suite(recipient.suite_id).decrypt(data[HEADER.size:], recipient.hpke_key, info=info) == plain:
                    self.reused += 1
                    return data
            except Exception:  # another plaintext, topic or key: not this one
                continue
        self.sealed += 1
        return header + suite(recipient.suite_id).encrypt(plain, recipient.public.hpke_key, info=info)


RECORDED = Recorded()

HOME = "vector-home-1"
OTHER_HOME = "vector-home-2"
EVENT_ID = "019bbfa4-2a6e-71a3-8bad-c0ffee123456"  # UUIDv7, timestamp 1768446765678 ms = EVENT_TIME
EVENT_ID_2 = "019bbfa4-2a73-7042-9234-567890abcdef"  # a second id, 5 ms later, acknowledged with it
EVENT_TIME = datetime(2026, 1, 15, 3, 12, 45, 678000, tzinfo=timezone.utc)
ACK_TIME = datetime(2026, 1, 15, 3, 12, 45, 901000, tzinfo=timezone.utc)
STATUS_TIME = datetime(2026, 1, 15, 3, 0, 0, 0, tzinfo=timezone.utc)


def _ed(hex_seed: str) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.from_private_bytes(bytes.fromhex(hex_seed))


def _sign_input(topic: str, body: bytes) -> bytes:
    return b"trygg/v1 sign\x00" + topic.encode() + b"\x00" + body


def _seal_info(topic: str, header: bytes) -> bytes:
    return b"trygg/v1 seal\x00" + topic.encode() + b"\x00" + header


def _sealed_entry(body: bytes, topic: str, signer, recipient: KemPrivate, recipient_name: str) -> dict:
    sealed = RECORDED.seal(padding.pad(envelope.sign(body, topic, signer), recipient.suite_id, topic), topic, recipient)
    header = sealed[: HEADER.size]
    assert header == HEADER.pack(VERSION, recipient.suite_id, recipient.public.kid)
    enc_len = {1: 32, 2: 1088 + 32}[recipient.suite_id]
    # Self-check before anything is written: it opens with the library and yields the body.
    opened = envelope.open_sealed(sealed, topic, [recipient], lambda kid: signer.public_key())
    assert opened.body == body
    signed_len = len(envelope.sign(body, topic, signer))
    plaintext_len = len(sealed) - HEADER.size - enc_len - 16
    assert len(sealed) in padding.SIZES
    return {
        "suite": recipient.suite_id,
        "recipient": recipient_name,
        "header_hex": header.hex(),
        "info_hex": _seal_info(topic, header).hex(),
        "enc_len": enc_len,
        "ciphertext_len": len(sealed) - HEADER.size - enc_len,
        "plaintext_len": plaintext_len,
        "signed_len": signed_len,
        "padding_len": plaintext_len - padding.LENGTH.size - signed_len,
        "envelope_len": len(sealed),
        "envelope_hex": sealed.hex(),
    }


def _seal_plain(plain: bytes, topic: str, recipient: KemPrivate, version: int = VERSION) -> bytes:
    """Seal an arbitrary plaintext under a version-`version` header (for the legacy and refused vectors)."""
    return RECORDED.seal(plain, topic, recipient, version)


def _padding_cases(signed: bytes, topic: str, recipient: KemPrivate, recipient_name: str) -> list[dict]:
    """Correctly sealed (the AEAD opens) envelopes whose padding is wrong: each must be refused."""
    room = padding.max_signed(padding.SIZES[0], recipient.suite_id)
    zeros = bytes(room - len(signed))
    length = padding.LENGTH.pack
    cases = [
        ("a non-zero padding byte (the last)", length(len(signed)) + signed + zeros[:-1] + b"\x01",
         "malformed padding: non-zero padding byte"),
        ("a non-zero padding byte (the first)", length(len(signed)) + signed + b"\x80" + zeros[1:],
         "malformed padding: non-zero padding byte"),
        ("length overruns the plaintext", length(room + 1) + signed + zeros, "malformed padding: length"),
        ("length one short: the last signed byte is left as padding", length(len(signed) - 1) + signed + zeros,
         "malformed padding: non-zero padding byte"),
        ("not padded: the envelope is not one of the sizes", length(len(signed)) + signed, "is not a padded size"),
        ("padded to a size that is not one of the sizes", length(len(signed)) + signed + zeros + bytes(100),
         "is not a padded size"),
    ]
    out = []
    for name, plain, text in cases:
        data = _seal_plain(plain, topic, recipient)
        try:
            envelope.open_sealed(data, topic, [recipient], lambda kid: None)
        except envelope.EnvelopeError as exc:
            assert text in str(exc), (name, exc)
        else:
            raise AssertionError(name)
        out.append({"case": name, "topic": topic, "recipient": recipient_name, "plaintext_len": len(plain),
                    "envelope_len": len(data), "envelope_hex": data.hex(), "error": "EnvelopeError",
                    "code": _code_of(text), "contains": text})
    return out


def _message_entry(model, message, topic: str, signer) -> tuple[dict, bytes]:
    body = encode(message)
    assert encode(decode(body, model)) == body
    signed = envelope.sign(body, topic, signer)
    entry = {
        "topic": topic,
        "model": model.__name__,
        "body_utf8": body.decode("utf-8"),
        "body_hex": body.hex(),
        "signer": None,  # filled by the caller
        "signed_input_hex": _sign_input(topic, body).hex(),
        "signed_hex": signed.hex(),
    }
    return entry, body


def build() -> dict:
    device_sign = _ed(DEVICE_ED25519)
    center_sign = _ed(CENTER_ED25519)
    other_sign = _ed(OTHER_ED25519)
    device_kem = KemPrivate(1, bytes.fromhex(DEVICE_X25519))
    center_x = KemPrivate(1, bytes.fromhex(CENTER_X25519))
    center_pq = KemPrivate(2, bytes.fromhex(CENTER_MLKEM768_SEED + CENTER_MLKEM_X25519))
    assert is_valid_id(EVENT_ID) and is_valid_id(EVENT_ID_2)
    assert int(EVENT_ID.replace("-", "")[:12], 16) == int(EVENT_TIME.timestamp() * 1000)

    def ed_entry(key: ed25519.Ed25519PrivateKey, name: str) -> dict:
        pub = key.public_key().public_bytes_raw()
        return {"label": LABELS[name], "private_hex": key.private_bytes_raw().hex(), "public_hex": pub.hex(),
                "kid_hex": key_id(pub).hex()}

    def kem_entry(key: KemPrivate, name: str) -> dict:
        label = LABELS[name]
        return {("labels" if isinstance(label, dict) else "label"): label, "suite": key.suite_id,
                "private_hex": key.raw.hex(), "public_hex": key.public.raw.hex(), "kid_hex": key.public.kid.hex()}

    # -- event (device -> center), sealed for both suites ------------------------------------
    event_topic = topics.up(HOME, "alarm")
    event = EventMessage(id=EVENT_ID, home=HOME, cls="alarm", kind="fall", time=EVENT_TIME, clock_synced=True,
                         body={"room": "kjøkken", "sensor": "fall_mat_1", "pressure_kg": 61.5, "lying_s": 12})
    event_entry, event_body = _message_entry(EventMessage, event, event_topic, device_sign)
    event_entry["signer"] = "device.sign"
    event_entry["sealed"] = [
        _sealed_entry(event_body, event_topic, device_sign, center_x, "center.kem_x25519"),
        _sealed_entry(event_body, event_topic, device_sign, center_pq, "center.kem_mlkem768_x25519"),
    ]
    # the same event as version 1 (unpadded, before issue 13): still opened, never sealed any more
    event_signed = envelope.sign(event_body, event_topic, device_sign)
    legacy = _seal_plain(event_signed, event_topic, center_x, LEGACY_VERSION)
    assert envelope.open_sealed(legacy, event_topic, [center_x], lambda kid: device_sign.public_key()).body == event_body
    event_entry["legacy_v1"] = {"suite": 1, "recipient": "center.kem_x25519", "header_hex": legacy[:10].hex(),
                                "envelope_len": len(legacy), "envelope_hex": legacy.hex()}

    # -- ack (center -> device), sealed to the device's X25519 key ------------------------------
    ack_topic = topics.ack(HOME)
    ack = AckMessage(home=HOME, ids=[EVENT_ID, EVENT_ID_2], time=ACK_TIME)
    ack_entry, ack_body = _message_entry(AckMessage, ack, ack_topic, center_sign)
    ack_entry["signer"] = "center.sign"
    ack_entry["sealed"] = [_sealed_entry(ack_body, ack_topic, center_sign, device_kem, "device.kem_x25519")]

    # -- status (device -> everyone), signed only -------------------------------------------------
    status_topic = topics.status(HOME)
    status = StatusMessage(home=HOME, state="online", time=STATUS_TIME, heartbeat_s=60)
    status_entry, _ = _message_entry(StatusMessage, status, status_topic, device_sign)
    status_entry["signer"] = "device.sign"

    device_public_file = PublicIdentity(HOME, device_sign.public_key(), device_kem.public).to_json()

    return {
        "format": "trygg-protocol-vectors-v1",
        "warning": "THROWAWAY TEST KEYS, public on purpose. Never enrol or deploy them.",
        "spec": "docs/protocol.md",
        "generator": "tests/vectors/make_vectors.py (HPKE sealing is randomized: envelopes recorded once)",
        "hpke": {
            "mode": "base (0x00), single-shot, aad empty, sequence number 0",
            "suites": {
                "1": {"kem_id": "0x0020", "kem": "DHKEM(X25519, HKDF-SHA256)", "kdf_id": "0x0001",
                      "aead_id": "0x0003", "enc_len": 32},
                "2": {"kem_id": "0x647a", "kem": "MLKEM768-X25519", "kdf_id": "0x0001", "aead_id": "0x0003",
                      "enc_len": 1120},
            },
        },
        "key_derivation": "each private key is the first 32 bytes of SHA-512(\"trygg test vector v1: \" + label); "
                          "the suite-2 key is the first 64 bytes for the label of its ML-KEM-768 seed (d || z), "
                          "then 32 bytes for the label of its X25519 scalar",
        "keys": {
            "device": {"sign": ed_entry(device_sign, "device.sign"),
                       "kem_x25519": kem_entry(device_kem, "device.kem_x25519")},
            "center": {
                "sign": ed_entry(center_sign, "center.sign"),
                "kem_x25519": kem_entry(center_x, "center.kem_x25519"),
                "kem_mlkem768_x25519": kem_entry(center_pq, "center.kem_mlkem768_x25519"),
            },
            "other": {"sign": ed_entry(other_sign, "other.sign")},
        },
        "device_public_key_file": device_public_file,
        "home": HOME,
        "event": event_entry,
        "ack": ack_entry,
        "status": status_entry,
        "padding": {"sizes": list(padding.SIZES), "picture_sizes": list(padding.PICTURE),
                    "plaintext": "length of the signed message (4 bytes, big-endian) || signed message || zero "
                                 "bytes, so that the whole envelope is the smallest size that holds it "
                                 "(on trygg/v1/<home>/lookin: the smallest of picture_sizes)"},
        "malformed_padding": _padding_cases(event_signed, event_topic, center_x, "center.kem_x25519"),
        "altered": _altered_cases(event_topic),
    }


def _altered_cases(event_topic: str) -> list[dict]:
    """Inputs that must be refused. The test computes each verdict; this only lists them.

    `target` names the valid vector the case starts from; `op` says how it is altered:
      flip      XOR the byte at `offset` (negative = from the end) with `mask`
      truncate  keep the first `length` bytes
      append    add `hex` at the end
      topic     open/verify with `topic` instead of the vector's topic
      lookup    the signer lookup knows only `key` (a name under "keys")
      lookup_substitute  the lookup answers the right key id with the public key `key`
      recipients  open with only the private key `key`
      status_home verify the status as if it had arrived for home `home`
    `error` is the exception class (EnvelopeError is a ValueError); `code` the refusal's stable code
    (protocol/refusals.py), which is what another implementation must match; `contains` a substring of
    this implementation's message (informative only).
    """
    env, val = "EnvelopeError", "ValueError"
    s1, s2 = "event.sealed.suite1", "event.sealed.suite2"
    cases = [
        (s1, "flip version byte", {"op": "flip", "offset": 0, "mask": 1}, env, "unsupported envelope version"),
        (s1, "version byte 2 -> 1 (padded bytes read as unpadded)", {"op": "flip", "offset": 0, "mask": 3}, env,
         "does not open"),
        (s1, "flip suite id byte", {"op": "flip", "offset": 1, "mask": 2}, env, "sealed to a key we do not hold"),
        (s1, "flip first key id byte", {"op": "flip", "offset": 2, "mask": 0x80}, env,
         "sealed to a key we do not hold"),
        (s1, "flip last key id byte", {"op": "flip", "offset": 9, "mask": 1}, env, "sealed to a key we do not hold"),
        (s1, "flip a byte of enc", {"op": "flip", "offset": 10, "mask": 1}, env, "does not open"),
        (s1, "flip high bit of enc's last byte", {"op": "flip", "offset": 41, "mask": 0x80}, env, "does not open"),
        (s1, "flip a ciphertext byte", {"op": "flip", "offset": 60, "mask": 0x10}, env, "does not open"),
        (s1, "flip last tag byte", {"op": "flip", "offset": -1, "mask": 1}, env, "does not open"),
        (s1, "wrong topic: other class", {"op": "topic", "topic": topics.up(HOME, "event")}, env, "does not open"),
        (s1, "wrong topic: other home", {"op": "topic", "topic": topics.up(OTHER_HOME, "alarm")}, env,
         "does not open"),
        (s1, "truncated to header only", {"op": "truncate", "length": 10}, env, "envelope too short"),
        (s1, "truncated to header + 1", {"op": "truncate", "length": 11}, env, "is not a padded size"),
        (s1, "truncated by one byte", {"op": "truncate", "length": -1}, env, "is not a padded size"),
        (s1, "truncated to half", {"op": "truncate", "length": 512}, env, "is not a padded size"),
        (s1, "empty", {"op": "truncate", "length": 0}, env, "envelope too short"),
        (s1, "extended by one byte", {"op": "append", "hex": "00"}, env, "is not a padded size"),
        (s1, "flip a byte of the padding region (last ciphertext byte before the tag)",
         {"op": "flip", "offset": -17, "mask": 1}, env, "does not open"),
        (s1, "wrong signer (lookup knows only another key)", {"op": "lookup", "key": "other.sign"}, env,
         "signed by an unknown key"),
        (s1, "signer key substituted for the same key id", {"op": "lookup_substitute", "key": "other.sign"}, env,
         "bad signature"),
        (s1, "opened with a key it was not sealed to", {"op": "recipients", "key": "center.kem_mlkem768_x25519"},
         env, "sealed to a key we do not hold"),
        (s2, "flip suite id byte (2 -> 1)", {"op": "flip", "offset": 1, "mask": 3}, env,
         "sealed to a key we do not hold"),
        (s2, "flip a byte of the ML-KEM ciphertext", {"op": "flip", "offset": 100, "mask": 1}, env, "does not open"),
        (s2, "flip a byte of the X25519 part of enc", {"op": "flip", "offset": 10 + 1088, "mask": 1}, env,
         "does not open"),
        (s2, "wrong topic: other class", {"op": "topic", "topic": topics.up(HOME, "telemetry")}, env,
         "does not open"),
        (s2, "truncated to the smallest size (inside enc)", {"op": "truncate", "length": 1024}, env,
         "does not open"),
        (s2, "truncated by one byte", {"op": "truncate", "length": -1}, env, "is not a padded size"),
        (s2, "wrong signer (lookup knows only another key)", {"op": "lookup", "key": "center.sign"}, env,
         "signed by an unknown key"),
        ("ack.sealed.suite1", "ack moved to another home's topic", {"op": "topic", "topic": topics.ack(OTHER_HOME)},
         env, "does not open"),
        ("ack.sealed.suite1", "ack not signed by the center", {"op": "lookup", "key": "device.sign"}, env,
         "signed by an unknown key"),
        ("status.signed", "flip a body byte", {"op": "flip", "offset": -5, "mask": 1}, env, "bad signature"),
        ("status.signed", "flip a signature byte", {"op": "flip", "offset": 8, "mask": 1}, env, "bad signature"),
        ("status.signed", "flip a signer key id byte", {"op": "flip", "offset": 0, "mask": 1}, env,
         "signed by an unknown key"),
        ("status.signed", "wrong topic: other home", {"op": "topic", "topic": topics.status(OTHER_HOME)}, env,
         "bad signature"),
        ("status.signed", "truncated below key id + signature", {"op": "truncate", "length": 71}, env,
         "signed message too short"),
        ("status.signed", "wrong signer (lookup knows only another key)", {"op": "lookup", "key": "center.sign"},
         env, "signed by an unknown key"),
        ("status.signed", "valid signature, body names another home", {"op": "status_home", "home": OTHER_HOME},
         val, "published on"),
    ]
    assert event_topic == topics.up(HOME, "alarm")
    return [{"target": t, "case": name, **op, "error": err, "code": _code_of(text), "contains": text}
            for t, name, op, err, text in cases]


_CODES = {  # this implementation's texts -> the protocol's codes (refusals.ENVELOPE, refusals.PLACE)
    "unsupported envelope version": "bad_version", "does not open": "does_not_open",
    "sealed to a key we do not hold": "unknown_recipient", "envelope too short": "too_short",
    "is not a padded size": "bad_size", "signed by an unknown key": "unknown_signer", "bad signature": "bad_signature",
    "signed message too short": "too_short", "published on": "wrong_home", "malformed padding": "bad_padding",
}


def _code_of(text: str) -> str:
    return next(code for part, code in _CODES.items() if part in text)


def write_vectors(description: str, out: Path, build_vectors, argv: list[str] | None = None) -> int:
    """The command line both vector scripts share: write the JSON once, again only with --force."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--force", action="store_true", help="overwrite the existing JSON (new envelopes)")
    parser.add_argument("--update", action="store_true",
                        help="overwrite the existing JSON, keeping every recorded envelope whose inputs are unchanged")
    parser.add_argument("--out", type=Path, default=out)
    args = parser.parse_args(argv)
    if args.out.exists() and not (args.force or args.update):
        print(f"{args.out} exists; the recorded envelopes are the vectors. Use --update to add to it, "
              "--force to regenerate.", file=sys.stderr)
        return 1
    if args.update and args.out.exists():
        RECORDED.remember(json.loads(args.out.read_text(encoding="utf-8")))
    data = build_vectors()
    args.out.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({RECORDED.reused} recorded envelopes kept, {RECORDED.sealed} sealed anew)")
    return 0


def main(argv: list[str] | None = None) -> int:
    return write_vectors(__doc__.splitlines()[0], OUT, build, argv)


if __name__ == "__main__":
    sys.exit(main())

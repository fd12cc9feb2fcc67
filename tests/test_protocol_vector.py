"""The wire protocol against its recorded test vectors (tests/vectors/envelope_v1.json, docs/protocol.md).

The vectors were produced once by tests/vectors/make_vectors.py; these tests prove that today's
code still opens, verifies and reproduces them byte for byte, refuses every altered input with
EnvelopeError / ValueError carrying the recorded code, and never fails with anything else on
arbitrary input.
"""

import functools
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from base.errors import EnvelopeError
from base.keys import PublicIdentity
from protocol.presence import verify_status
from protocol import envelope, messages, padding, topics
from protocol.envelope import LEGACY_VERSION, VERSION, Opened, open_sealed, sign, verify
from protocol.ids import is_valid_id
from protocol.kem import KemPrivate
from tests.support import vectorkeys

VECTORS = json.loads((Path(__file__).parent / "vectors" / "envelope_v1.json").read_text(encoding="utf-8"))
KEYS = VECTORS["keys"]
MODELS = {"EventMessage": messages.EventMessage, "AckMessage": messages.AckMessage,
          "StatusMessage": messages.StatusMessage}
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _h(text: str) -> bytes:
    return bytes.fromhex(text)


ed_private = functools.partial(vectorkeys.ed_private, KEYS)  # "device.sign" -> its private key
ed_public = functools.partial(vectorkeys.ed_public, KEYS)


def kem_private(name: str) -> KemPrivate:
    who, which = name.split(".")
    entry = KEYS[who][which]
    return KemPrivate(entry["suite"], _h(entry["private_hex"]))


def lookup_for(*names: str):
    """A signer lookup that knows exactly these signing keys, by their key id."""
    known = {envelope.signer_kid(ed_public(n)): ed_public(n) for n in names}
    return known.get


def sealed_vectors() -> list[tuple[str, dict, dict]]:
    out = []
    for msg in ("event", "ack"):
        for sealed in VECTORS[msg]["sealed"]:
            out.append((f"{msg}.sealed.suite{sealed['suite']}", VECTORS[msg], sealed))
    return out


SEALED = {name: (message, sealed) for name, message, sealed in sealed_vectors()}


# -- keys and key ids ------------------------------------------------------------------------
def test_key_ids_are_sha256_prefixes_of_the_public_keys():
    for who, entries in KEYS.items():
        for which, entry in entries.items():
            assert _h(entry["kid_hex"]) == hashlib.sha256(_h(entry["public_hex"])).digest()[:8], (who, which)
            if which == "sign":
                assert ed_private(f"{who}.sign").public_key().public_bytes_raw() == _h(entry["public_hex"])
            else:
                assert kem_private(f"{who}.{which}").public.raw == _h(entry["public_hex"])
                assert kem_private(f"{who}.{which}").public.kid == _h(entry["kid_hex"])


def test_every_key_derives_from_its_label():
    """docs/protocol.md §10: SHA-512("trygg test vector v1: " + label), the first 32 (64) bytes."""
    def seed(label: str, size: int = 32) -> str:
        return hashlib.sha512(b"trygg test vector v1: " + label.encode()).digest()[:size].hex()

    for who, entries in KEYS.items():
        for which, entry in entries.items():
            if "labels" in entry:  # the suite-2 key: the ML-KEM-768 seed d || z, then the X25519 scalar
                labels = entry["labels"]
                assert entry["private_hex"] == seed(labels["mlkem768_seed"], 64) + seed(labels["x25519"]), (who, which)
            else:
                assert entry["private_hex"] == seed(entry["label"]), (who, which)


def test_public_key_file_matches_the_device_keys():
    device = PublicIdentity(VECTORS["home"], ed_public("device.sign"), kem_private("device.kem_x25519").public)
    assert device.to_json() == VECTORS["device_public_key_file"]


# -- bodies: canonical JSON -------------------------------------------------------------------
@pytest.mark.parametrize("msg", ["event", "ack", "status"])
def test_body_decodes_and_reencodes_byte_for_byte(msg):
    vector = VECTORS[msg]
    body = _h(vector["body_hex"])
    assert body == vector["body_utf8"].encode("utf-8")
    model = MODELS[vector["model"]]
    decoded = messages.decode(body, model)
    assert isinstance(decoded, model)
    assert messages.encode(decoded) == body
    assert decoded.home == VECTORS["home"]
    assert topics.parse(vector["topic"]).home == VECTORS["home"]


def test_event_vector_content():
    event = messages.decode(_h(VECTORS["event"]["body_hex"]), messages.EventMessage)
    assert (event.cls, event.kind, event.clock_synced) == ("alarm", "fall", True)
    assert is_valid_id(event.id)
    assert int(event.id.replace("-", "")[:12], 16) == round(event.time.timestamp() * 1000)
    assert topics.parse(VECTORS["event"]["topic"]) == topics.Topic(event.home, "up", "alarm")
    ack = messages.decode(_h(VECTORS["ack"]["body_hex"]), messages.AckMessage)
    assert event.id in ack.ids


# -- signatures: deterministic Ed25519 --------------------------------------------------------
@pytest.mark.parametrize("msg", ["event", "ack", "status"])
def test_sign_reproduces_the_signed_message(msg):
    vector = VECTORS[msg]
    body, topic = _h(vector["body_hex"]), vector["topic"]
    signed = sign(body, topic, ed_private(vector["signer"]))
    assert signed.hex() == vector["signed_hex"]
    # layout: signer key id (8) || Ed25519 signature (64) || body, over the documented input
    assert signed[:8] == _h(KEYS[vector["signer"].split(".")[0]]["sign"]["kid_hex"])
    assert signed[72:] == body
    signed_input = _h(vector["signed_input_hex"])
    assert signed_input == b"trygg/v1 sign\x00" + topic.encode() + b"\x00" + body
    ed_public(vector["signer"]).verify(signed[8:72], signed_input)
    opened = verify(signed, topic, lookup_for(vector["signer"]))
    assert opened == Opened(body, signed[:8])


def test_status_vector_verifies_as_presence():
    vector = VECTORS["status"]
    status = verify_status(_h(vector["signed_hex"]), vector["topic"], VECTORS["home"], lookup_for("device.sign"))
    assert (status.state, status.heartbeat_s) == ("online", 60)


# -- sealed envelopes --------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SEALED))
def test_sealed_vector_opens_to_the_body(name):
    message, sealed = SEALED[name]
    data = _h(sealed["envelope_hex"])
    recipient = kem_private(sealed["recipient"])
    assert len(data) == sealed["envelope_len"] == 10 + sealed["enc_len"] + sealed["ciphertext_len"]
    assert sealed["ciphertext_len"] == sealed["plaintext_len"] + 16  # Poly1305 tag
    # padded: 4-byte length || signed message || zeros, to one of the fixed sizes
    assert sealed["signed_len"] == len(_h(message["signed_hex"]))
    assert sealed["plaintext_len"] == 4 + sealed["signed_len"] + sealed["padding_len"]
    assert sealed["envelope_len"] in VECTORS["padding"]["sizes"] == list(padding.SIZES)
    assert sealed["envelope_len"] == {1: 1024, 2: 2048}[sealed["suite"]]
    header = data[:10]
    assert header.hex() == sealed["header_hex"]
    assert header == bytes([VERSION, sealed["suite"]]) + recipient.public.kid
    assert _h(sealed["info_hex"]) == b"trygg/v1 seal\x00" + message["topic"].encode() + b"\x00" + header
    others = [kem_private("device.kem_x25519"), kem_private("center.kem_x25519"),
              kem_private("center.kem_mlkem768_x25519")]
    opened = open_sealed(data, message["topic"], others, lookup_for("device.sign", "center.sign"))
    assert opened.body == _h(message["body_hex"])
    assert opened.signer_kid == _h(message["signed_hex"])[:8]
    assert messages.encode(messages.decode(opened.body, MODELS[message["model"]])) == opened.body
    assert opened.version == VERSION == 2


def test_legacy_version_1_envelope_still_opens():
    """Sealed before padding (issue 13): an alarm in an outbox at the upgrade must still be delivered."""
    legacy = VECTORS["event"]["legacy_v1"]
    data = _h(legacy["envelope_hex"])
    assert data[0] == LEGACY_VERSION and len(data) == legacy["envelope_len"] == 10 + 32 + 72 + 251 + 16
    opened = open_sealed(data, VECTORS["event"]["topic"], [kem_private(legacy["recipient"])], lookup_for("device.sign"))
    assert (opened.body, opened.version) == (_h(VECTORS["event"]["body_hex"]), LEGACY_VERSION)


@pytest.mark.parametrize("case", VECTORS["malformed_padding"], ids=[c["case"] for c in VECTORS["malformed_padding"]])
def test_malformed_padding_vectors_are_refused(case):
    data = _h(case["envelope_hex"])
    assert len(data) == case["envelope_len"]
    with pytest.raises(EnvelopeError) as info:
        open_sealed(data, case["topic"], [kem_private(case["recipient"])], lookup_for("device.sign"))
    assert info.value.code == case["code"]
    assert case["contains"] in str(info.value)  # this implementation's wording; the code is the contract


def test_fresh_seal_of_the_vector_body_opens_too():
    """Sealing is randomized: a new envelope differs from the recorded one but opens the same."""
    message, sealed = SEALED["event.sealed.suite1"]
    recipient = kem_private(sealed["recipient"])
    fresh = envelope.seal(_h(message["body_hex"]), message["topic"], ed_private(message["signer"]), recipient.public)
    assert fresh != _h(sealed["envelope_hex"])
    assert fresh[:10] == _h(sealed["header_hex"])
    assert open_sealed(fresh, message["topic"], [recipient], lookup_for("device.sign")).body == _h(message["body_hex"])


# -- altered inputs ----------------------------------------------------------------------------
def _target(name: str) -> tuple[bytes, str, list[KemPrivate] | None, str]:
    """(bytes, topic, recipients or None for signed-only, signer name) of a named vector."""
    if name == "status.signed":
        vector = VECTORS["status"]
        return _h(vector["signed_hex"]), vector["topic"], None, vector["signer"]
    message, sealed = SEALED[name]
    return _h(sealed["envelope_hex"]), message["topic"], [kem_private(sealed["recipient"])], message["signer"]


def _apply(case: dict) -> None:
    data, topic, recipients, signer = _target(case["target"])
    lookup = lookup_for(signer)
    home = VECTORS["home"]
    op = case["op"]
    if op == "flip":
        buf = bytearray(data)
        buf[case["offset"]] ^= case["mask"]
        data = bytes(buf)
    elif op == "truncate":
        data = data[: case["length"]]
    elif op == "append":
        data = data + _h(case["hex"])
    elif op == "topic":
        topic = case["topic"]
    elif op == "lookup":
        lookup = lookup_for(case["key"])
    elif op == "lookup_substitute":
        impostor = ed_public(case["key"])
        lookup = lambda kid: impostor  # noqa: E731 - answers every key id with the wrong key
    elif op == "recipients":
        recipients = [kem_private(case["key"])]
    elif op == "status_home":
        home = case["home"]
    else:
        raise AssertionError(f"unknown op {op!r}")
    if recipients is None:
        verify_status(data, topic, home, lookup)
    else:
        open_sealed(data, topic, recipients, lookup)


@pytest.mark.parametrize("case", VECTORS["altered"], ids=[f"{c['target']}: {c['case']}" for c in VECTORS["altered"]])
def test_altered_input_is_refused(case):
    expected = {"EnvelopeError": EnvelopeError, "ValueError": ValueError}[case["error"]]
    with pytest.raises(expected) as info:
        _apply(case)
    assert info.value.code == case["code"]
    assert case["contains"] in str(info.value)  # this implementation's wording; the code is the contract
    if case["error"] == "ValueError":  # refused by the message check, after the envelope verified
        assert not isinstance(info.value, EnvelopeError)


def test_every_altered_target_exists():
    assert {c["target"] for c in VECTORS["altered"]} <= set(SEALED) | {"status.signed"}
    assert len(VECTORS["altered"]) >= 20


# -- properties: nothing but EnvelopeError, ever ---------------------------------------------------
ALL_RECIPIENTS = [kem_private("center.kem_x25519"), kem_private("center.kem_mlkem768_x25519"),
                  kem_private("device.kem_x25519")]
ANY_SIGNER = lookup_for("device.sign", "center.sign")
# MQTT topic names are UTF-8 strings (no lone surrogates, which hypothesis' text() already omits).
TOPICS = st.one_of(st.text(max_size=80), st.sampled_from([m["topic"] for m, _ in SEALED.values()]))


def _headers(version: int) -> st.SearchStrategy[bytes]:
    """Headers this receiver will actually try to open, so the HPKE path is exercised too."""
    return st.sampled_from([bytes([version, k.suite_id]) + k.public.kid for k in ALL_RECIPIENTS])


PAYLOADS = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda h, tail: h + tail, _headers(LEGACY_VERSION), st.binary(max_size=1500)),
    st.builds(lambda h, tail: h + tail, _headers(VERSION), st.binary(max_size=1500)),
    # exactly one of the padded sizes, so a version-2 payload gets past the size check into HPKE
    st.builds(lambda h, tail, size: (h + tail + bytes(size))[:size], _headers(VERSION), st.binary(max_size=1500),
              st.sampled_from([1024, 2048])),
)


@FUZZ
@given(payload=PAYLOADS, topic=TOPICS)
def test_random_payloads_raise_only_envelope_error(payload, topic):
    try:
        result = open_sealed(payload, topic, ALL_RECIPIENTS, ANY_SIGNER)
    except EnvelopeError:
        return
    assert isinstance(result, Opened)  # (practically never reached)


@FUZZ
@given(payload=st.binary(max_size=200), topic=TOPICS)
def test_random_signed_messages_raise_only_envelope_error(payload, topic):
    try:
        result = verify(payload, topic, ANY_SIGNER)
    except EnvelopeError:
        return
    assert isinstance(result, Opened)


MUTABLE = sorted(SEALED)


@st.composite
def mutations(draw):
    name = draw(st.sampled_from(MUTABLE))
    message, sealed = SEALED[name]
    data = bytearray(_h(sealed["envelope_hex"]))
    kind = draw(st.sampled_from(["flip", "flips", "truncate", "extend", "splice"]))
    if kind == "flip":
        i = draw(st.integers(0, len(data) - 1))
        data[i] ^= 1 << draw(st.integers(0, 7))
    elif kind == "flips":
        for i in draw(st.lists(st.integers(0, len(data) - 1), min_size=2, max_size=8, unique=True)):
            data[i] ^= draw(st.integers(1, 255))
    elif kind == "truncate":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif kind == "extend":
        data += draw(st.binary(min_size=1, max_size=64))
    else:  # replace a run of bytes with different bytes
        i = draw(st.integers(0, len(data) - 1))
        run = draw(st.binary(min_size=1, max_size=min(32, len(data) - i)))
        if bytes(data[i : i + len(run)]) == run:
            run = bytes([run[0] ^ 0xFF]) + run[1:]
        data[i : i + len(run)] = run
    assert bytes(data) != _h(sealed["envelope_hex"])
    return name, bytes(data)


@FUZZ
@given(mutated=mutations())
def test_mutated_vectors_are_refused(mutated):
    name, data = mutated
    message, _ = SEALED[name]
    with pytest.raises(EnvelopeError):
        open_sealed(data, message["topic"], ALL_RECIPIENTS, ANY_SIGNER)

"""Every message kind, and strict decoding, against tests/vectors/messages_v1.json (docs/protocol.md §6).

The vectors were produced once by tests/vectors/make_message_vectors.py, with the expected codes
written from the spec. These tests prove that today's code decodes every recorded message and
re-encodes it byte for byte, reproduces every signature, opens every sealed one (the look-in
picture with the staff member's key, the fleet report inside the status with the center's),
refuses every `refused` body with one of its recorded codes and accepts every `accepted` one;
that there is a vector for every kind, class and action the protocol has; and, by property,
that the one JSON reader agrees with the standard library wherever JSON is unambiguous and
never fails with anything but MessageError.
"""

import base64
import hashlib
import json
import math
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import envelope, padding, topics, wirejson
from protocol.actions import ACTIONS
from protocol.errors import MessageError
from protocol.events import CLASSES
from protocol.fleet import open_report
from protocol.kem import KemPrivate
from protocol.lookin import parse_plan
from protocol.messages import MESSAGES, decode, encode
from protocol.refusals import DECODE

VECTORS = json.loads((Path(__file__).parent / "vectors" / "messages_v1.json").read_text(encoding="utf-8"))
KEYS = VECTORS["keys"]
MESSAGE_VECTORS = VECTORS["messages"]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _h(text: str) -> bytes:
    return bytes.fromhex(text)


def ed(name: str) -> ed25519.Ed25519PrivateKey:
    who, which = name.split(".")
    return ed25519.Ed25519PrivateKey.from_private_bytes(_h(KEYS[who][which]["private_hex"]))


def kem(name: str) -> KemPrivate:
    who, which = name.split(".")
    return KemPrivate(KEYS[who][which]["suite"], _h(KEYS[who][which]["private_hex"]))


def body_of(vector: dict) -> bytes:
    return vector["body_utf8"].encode("utf-8") if "body_utf8" in vector else _h(vector["body_hex"])


def read(kind: str, raw: bytes):
    """What a receiver does with a body of this kind: a lookin_plan is an event's body, read as its own JSON."""
    if kind == "lookin_plan":
        return parse_plan(wirejson.loads(raw))
    return decode(raw, MESSAGES[kind])


# -- keys -------------------------------------------------------------------------------------------
def test_keys_derive_from_their_labels_as_in_the_other_vector_files():
    envelope_keys = json.loads((Path(__file__).parent / "vectors" / "envelope_v1.json").read_text())["keys"]
    command_keys = json.loads((Path(__file__).parent / "vectors" / "commands_v1.json").read_text())["keys"]
    for who, entries in KEYS.items():
        for which, entry in entries.items():
            seed = hashlib.sha512(b"trygg test vector v1: " + entry["label"].encode()).digest()[:32]
            assert entry["private_hex"] == seed.hex()
            assert _h(entry["kid_hex"]) == hashlib.sha256(_h(entry["public_hex"])).digest()[:8]
            other = envelope_keys.get(who, {}).get(which) or command_keys.get(who, {}).get(which)
            assert other is not None and other["private_hex"] == entry["private_hex"], (who, which)


# -- every message kind -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(MESSAGE_VECTORS))
def test_message_decodes_reencodes_and_its_signature_is_reproduced(name):
    vector = MESSAGE_VECTORS[name]
    body = body_of(vector)
    message = decode(body, MESSAGES[vector["kind"]])
    assert type(message).__name__ == vector["model"]
    assert encode(message) == body
    assert message.t == vector["kind"]
    assert message.home == VECTORS["home"]
    signed = envelope.sign(body, vector["topic"], ed(vector["signer"]))
    assert signed.hex() == vector["signed_hex"]


@pytest.mark.parametrize("name", sorted(n for n, v in MESSAGE_VECTORS.items() if "envelope_hex" in v))
def test_sealed_message_opens_with_its_recipients_key(name):
    vector = MESSAGE_VECTORS[name]
    data = _h(vector["envelope_hex"])
    assert len(data) == vector["envelope_len"] in padding.sizes_for(vector["topic"])
    signer = ed(vector["signer"]).public_key()
    opened = envelope.open_sealed(data, vector["topic"], [kem(vector["recipient"])],
                                  lambda kid: signer if kid == envelope.signer_kid(signer) else None)
    assert opened.body == body_of(vector)


def test_every_kind_class_and_action_has_a_vector():
    kinds = {v["kind"] for v in MESSAGE_VECTORS.values()}
    assert kinds == set(MESSAGES) == set(VECTORS["kinds"]) - {"lookin_plan"}
    events = [decode(body_of(v), MESSAGES["event"]) for v in MESSAGE_VECTORS.values() if v["kind"] == "event"]
    assert {e.cls for e in events} == set(CLASSES)
    assert {"lookin_plan", "audit"} <= {e.kind for e in events}
    commands = [decode(body_of(v), MESSAGES["command"]) for v in MESSAGE_VECTORS.values() if v["kind"] == "command"]
    assert {c.action for c in commands} == set(ACTIONS)
    for command in commands:  # every argument an action takes, once
        assert set(command.args) == set(ACTIONS[command.action].model_fields), command.action
    states = {decode(body_of(v), MESSAGES["status"]).state for v in MESSAGE_VECTORS.values() if v["kind"] == "status"}
    assert states == {"online", "offline"}


def test_the_lookin_plan_event_body_is_a_plan():
    event = decode(body_of(MESSAGE_VECTORS["event_lookin_plan"]), MESSAGES["event"])
    plan = parse_plan(event.body)
    assert plan.model_dump(mode="json") == event.body
    assert plan.windows[0].days and plan.times == ["23:00", "03:00"]


def test_the_online_status_carries_the_fleet_report_sealed_to_the_center():
    status = decode(body_of(MESSAGE_VECTORS["status_online"]), MESSAGES["status"])
    device = ed("device.sign").public_key()
    report = open_report(status.report, topics.status(status.home), [kem("center.kem_x25519")], lambda kid: device)
    assert report == decode(body_of(MESSAGE_VECTORS["fleet_report"]), MESSAGES["fleet_report"])
    assert base64.b64decode(status.report) == _h(MESSAGE_VECTORS["fleet_report"]["envelope_hex"])


def test_the_picture_frames_are_standard_base64_jpegs_answering_the_lookin_command():
    picture = decode(body_of(MESSAGE_VECTORS["lookin"]), MESSAGES["lookin"])
    command = decode(body_of(MESSAGE_VECTORS["command_lookin"]), MESSAGES["command"])
    assert picture.command == command.id
    for frame in picture.frames:
        jpeg = base64.b64decode(frame, validate=True)
        assert jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"
        assert base64.b64encode(jpeg).decode() == frame
    assert MESSAGE_VECTORS["lookin"]["envelope_len"] == padding.PICTURE_MIN


# -- strictness ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", VECTORS["refused"], ids=[f"{c['kind']}: {c['case']}" for c in VECTORS["refused"]])
def test_refused_body_gets_its_code(case):
    with pytest.raises(MessageError) as refused:
        read(case["kind"], body_of(case))
    assert refused.value.code in case["codes"], str(refused.value)
    if "where" in case and len(case["codes"]) == 1:  # informative for others; this implementation names it so
        assert refused.value.where == case["where"], str(refused.value)


@pytest.mark.parametrize("case", VECTORS["accepted"], ids=[f"{c['kind']}: {c['case']}" for c in VECTORS["accepted"]])
def test_accepted_body_decodes(case):
    read(case["kind"], body_of(case))


def test_every_decode_code_has_a_refused_vector():
    assert {code for case in VECTORS["refused"] for code in case["codes"]} == set(DECODE)


# -- the one JSON reader, by property -------------------------------------------------------------------
SAFE_INTS = st.integers(-(2**53), 2**53)
FINITE = st.floats(allow_nan=False, allow_infinity=False)
SCALARS = st.one_of(st.none(), st.booleans(), SAFE_INTS, FINITE, st.text(max_size=20))
UNAMBIGUOUS = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=20)


@FUZZ
@given(value=UNAMBIGUOUS, ascii_only=st.booleans(), indent=st.sampled_from([None, 1]))
def test_the_reader_agrees_with_the_standard_library_on_unambiguous_json(value, ascii_only, indent):
    text = json.dumps(value, ensure_ascii=ascii_only, indent=indent)
    read_back = wirejson.loads(text.encode("utf-8"))
    expected = json.loads(text)
    assert read_back == expected or (isinstance(expected, float) and math.isnan(expected))


@FUZZ
@given(raw=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
                     st.lists(st.sampled_from(['{', '}', '[', ']', '"a"', ':', ',', '1', '1e999', 'NaN', 'null',
                                               '"\\ud800"', '9007199254740993', ' ']), max_size=40)
                     .map(lambda parts: "".join(parts).encode())))
def test_the_reader_refuses_with_message_error_only(raw):
    try:
        wirejson.loads(raw)
    except MessageError as exc:
        assert exc.code in DECODE

"""Traffic must not tell what happened (issue 13): every sealed message is one of a few sizes.

Seals what a home really sends - each kind the drivers, the daemon and the command handler
emit, with bodies as they make them - through the real Sealer, and checks that a fall and a
missed dose, a heartbeat's worth of telemetry and an audit entry all leave the device the same
length; that commands, results, acks and pictures are padded too; that the largest command the
device accepts still fits its limit; and that padding which is not exactly as specified is refused.
"""

import base64
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.commands import MAX_COMMAND_BYTES
from base.errors import EnvelopeError
from protocol.events import Event
from base.keys import Identity
from protocol import envelope, padding, topics
from protocol.envelope import HEADER, LEGACY_VERSION, MAX_ENVELOPE, VERSION
from protocol.kem import KemPrivate, suite
from protocol.messages import (MAX_ACK_IDS, MAX_LOOKIN_JSON, AckMessage, CommandMessage, LookinMessage,
                                     decode, encode)
from agent.sealer import Sealer
from tests.support.fakes import FakeClock

HOME = "hem-0042"
NOW = datetime(2026, 1, 15, 3, 12, 45, 678000, tzinfo=timezone.utc)
HASH = "9f" * 32
CMD_ID = "019bbfaa-cb00-7c3d-9e11-d00000000001"
PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def keys():
    return {"device": Identity.generate(HOME), "center": Identity.generate("center"),
            "center_pq": Identity.generate("center", "mlkem768-x25519"), "staff": Identity.generate("anna")}


def _audit(seq: int, kind: str, detail: dict) -> dict:
    return {"seq": seq, "time": 1768446765.678, "synced": True, "kind": kind, "detail": detail, "prev": HASH,
            "hash": HASH}


# What a quiet home and a bad night send, as the drivers (drivers/*.py: {driver kind: name, ...}),
# the daemon (data_lost, audit, lookin_plan) and the command handler (command_result) make it.
EVENTS = [
    Event("alarm", "fall", {"mat": "bedside", "pressed_s": 12.4, "mode": "floor"}),
    Event("alarm", "help", {"button": "wrist", "repeat": False}),
    Event("alarm", "bed_exit", {"mat": "bed", "away_s": 903.2, "mode": "bed"}),
    Event("alarm", "door_open", {"lock": "front-door", "by": "inside", "night": True}),
    Event("alarm", "dose_missed", {"dispenser": "kitchen", "dose": "08:00", "window_s": 3600.0, "dispensed": True}),
    Event("alarm", "inactivity", {"motion": "hall", "quiet_s": 14400, "quiet_limit_s": 14400.0}),
    Event("event", "dose_taken", {"dispenser": "kitchen", "dose": "13:00", "after_s": 412, "late": False}),
    Event("event", "help_cancelled", {"button": "wrist", "after_s": 4.2, "held_s": 3.1}),
    Event("event", "door_open", {"lock": "front-door", "by": "inside", "night": False}),
    Event("event", "door_closed", {"lock": "front-door", "open_s": 41.0}),
    Event("event", "visit", {"lock": "front-door", "staff": "anna.karlsson", "started": 1768446765.678,
                             "ended": "door closed", "open_s": 1200.5}),
    Event("event", "bed_return", {"mat": "bed", "away_s": 1210.7}),
    Event("event", "mat_clear", {"mat": "bedside", "pressed_s": 64.0}),
    Event("event", "almost_empty", {"dispenser": "kitchen", "doses_left": 9, "days_left": 3.0}),
    Event("event", "fault", {"mat": "bedside", "component": "mats.bedside",
                             "detail": "mat cable cut or unplugged (supervision loop open)"}),
    Event("event", "fault_cleared", {"mat": "bedside", "component": "mats.bedside",
                                     "detail": "mat cable connected again"}),
    Event("event", "fault", {"component": "camera", "detail": "camera: no picture within 30 s (the capture was stopped)"}),
    Event("event", "data_lost", {"dropped": {"telemetry": 1432, "event": 0}, "expired": {"telemetry": 96, "event": 3}}),
    Event("event", "audit", _audit(41, "start", {"config_sha256": HASH, "center_key": "8f0867a3310253b2"})),
    Event("event", "audit", _audit(42, "command", {
        "outcome": "refused", "bytes": 1024, "command": CMD_ID, "action": "unlock", "staff": "anna.karlsson",
        "role": "night-staff", "reason": "not allowed: role night-staff may unlock front-door only while an alarm "
                                         "is open or inside a planned visit window"})),
    Event("event", "audit", _audit(43, "staff_added", {"name": "anna.karlsson", "role": "night-staff",
                                                       "kid": "8f0867a3310253b2", "replaced": False})),
    Event("event", "command_result", {"command": CMD_ID, "action": "unlock", "args": {"lock": "front-door"},
                                      "outcome": "done", "reason": "", "staff": "anna.karlsson", "role": "night-staff",
                                      "lock": "front-door", "state": "unlocked"}),
    Event("event", "command_result", {"command": CMD_ID, "action": "lookin", "args": {}, "outcome": "done",
                                      "reason": "", "staff": "anna.karlsson", "role": "night-staff", "frames": 1,
                                      "privacy": "blur", "left": 1, "bytes": 262144, "capture_ms": 812.4}),
    Event("event", "lookin_plan", {"camera": "picamera2", "timezone": "Europe/Stockholm", "times": ["23:30", "03:00"],
                                   "tolerance_s": 900.0, "max_per_night": 2, "privacy": "blur",
                                   "roles": ["night-staff"], "windows": [{"start": "22:00", "end": "06:00"}]}),
    Event("telemetry", "device_health", {"health": "device", "cpu_temp_c": 48.3, "disk_free_mb": 27310,
                                         "disk_free_pct": 91.2, "under_voltage": False, "clock_synced": True}),
    Event("telemetry", "activity_summary", {"motion": "hall", "date": "2026-01-14",
                                            "per_hour": [0, 0, 1, 0, 0, 0, 3, 14, 22, 9, 11, 17, 25, 8, 6, 12,
                                                         19, 23, 31, 16, 12, 4, 1, 0], "total": 254}),
    Event("telemetry", "dose_summary", {"dispenser": "kitchen", "date": "2026-01-14", "taken": 2, "late": 1,
                                        "missed": 0, "faults": 0, "power_interruptions": 0, "doses_left": 19,
                                        "days_left": 6.3}),
]


def _sealed_events(keys, center) -> dict[str, int]:
    sealer = Sealer(HOME, keys["device"], center.kem.public, FakeClock(NOW))
    return {f"{e.cls}/{e.kind}#{i}": len(sealer.seal(e)[1].payload) for i, e in enumerate(EVENTS)}


def test_every_event_a_home_sends_is_the_same_size_on_the_broker(keys):
    sizes = _sealed_events(keys, keys["center"])
    assert set(sizes.values()) == {padding.SIZES[0]}, sizes


def test_with_the_post_quantum_suite_too(keys):
    sizes = _sealed_events(keys, keys["center_pq"])
    assert set(sizes.values()) == {2 * 1024}, sizes


def _command(action: str, args: dict) -> CommandMessage:
    return CommandMessage(id=CMD_ID, home=HOME, action=action, args=args, issued=NOW,
                          expires=NOW + timedelta(seconds=60), challenge="2aa5c3be165637f3195d8233e6f2cef7")


COMMANDS = [("unlock", {"lock": "front-door"}), ("lock", {"lock": "medicine-cabinet"}), ("ping", {}),
            ("status", {}), ("lookin", {}), ("switch_center_key", {"kid": "8f0867a3310253b2"}),
            ("lookin_grant", {"times": "23:00,03:00", "roles": "night-staff", "max_per_night": 2,
                              "privacy": "silhouette"})]


def test_commands_are_one_size_whatever_they_ask(keys):
    topic = topics.command(HOME)
    sizes = {action: len(envelope.seal(encode(_command(action, args)), topic, keys["staff"].sign,
                                       keys["device"].kem.public))
             for action, args in COMMANDS}
    assert set(sizes.values()) == {padding.SIZES[0]}, sizes


def test_acks_are_padded(keys):
    topic = topics.ack(HOME)
    ids = [f"019bbfa4-2a6e-71a3-8bad-{i:012x}" for i in range(MAX_ACK_IDS)]

    def sealed(n: int) -> int:
        ack = AckMessage(home=HOME, ids=ids[:n], time=NOW)
        return len(envelope.seal(encode(ack), topic, keys["center"].sign, keys["device"].kem.public))

    assert {sealed(n) for n in (1, 2, 5, 10)} == {padding.SIZES[0]}  # what a quiet home gets
    for n in (50, 200, MAX_ACK_IDS):
        assert sealed(n) in padding.SMALL


def _picture(jpeg_bytes: list[int], privacy: str = "blur") -> bytes:
    frames = [base64.b64encode(bytes([0xFF, 0xD8]) + bytes(n - 2)).decode() for n in jpeg_bytes]
    return encode(LookinMessage(home=HOME, command=CMD_ID, staff="anna.karlsson", time=NOW, privacy=privacy,
                                width=1280, height=720, frames=frames))


@pytest.mark.parametrize("kem", ["x25519", "mlkem768-x25519"])
def test_pictures_are_coarse_and_the_largest_still_fits(keys, kem):
    """Blurred, silhouette and unfiltered 720p pictures (measured with the synthetic camera: ~20 KB,
    ~15 KB, ~146 KB of JPEG) are one size; the most the capture may produce still fits 1 MiB."""
    staff_kem = KemPrivate.generate(kem).public
    topic = topics.lookin(HOME)

    def sealed(body: bytes) -> int:
        return len(envelope.seal(body, topic, keys["device"].sign, staff_kem))

    assert {sealed(_picture([n])) for n in (15_000, 20_000, 146_000)} == {padding.PICTURE_MIN}
    most = (MAX_LOOKIN_JSON - 4096) * 3 // 4  # agent/lookin.py asks the capture for at most this much JPEG
    assert sealed(_picture([most])) == MAX_ENVELOPE
    assert sealed(_picture([most // 5] * 5)) == MAX_ENVELOPE


def _chars(n: int) -> str:
    """n bytes of UTF-8 in at most n // 4 + 1 characters (a value may have 256 characters)."""
    return "\U0001d11e" * (n // 4) + {0: "", 1: "a", 2: "\u00f8", 3: "\u20ac"}[n % 4]


def _body_of_length(length: int) -> bytes:
    """A valid command body of exactly `length` bytes (15 string args beside `lock`)."""
    keys = [f"x{i:02d}" for i in range(15)]
    args = {"lock": "front-door", **{k: "" for k in keys}}
    left = length - len(encode(_command("unlock", args)))
    assert 0 <= left <= 15 * 1020
    for k in keys:
        take = min(left, 1020)
        args[k], left = _chars(take), left - take
    body = encode(_command("unlock", args))
    assert len(body) == length
    decode(body, CommandMessage)
    return body


@pytest.mark.parametrize("kem", ["x25519", "mlkem768-x25519"])
def test_the_largest_command_the_device_accepts_still_fits(keys, kem):
    """The device refuses a command envelope over MAX_COMMAND_BYTES before any crypto: the largest
    padded size below it is exactly that limit, so a command that fills it is still accepted and
    one byte more is refused (and so is anything the sender cannot fit)."""
    device = KemPrivate.generate(kem)
    topic = topics.command(HOME)
    assert MAX_COMMAND_BYTES in padding.SIZES
    largest = padding.max_signed(MAX_COMMAND_BYTES, device.suite_id) - envelope.SIG_LEN - 8
    body = _body_of_length(largest)
    sealed = envelope.seal(body, topic, keys["staff"].sign, device.public)
    assert len(sealed) == MAX_COMMAND_BYTES
    opened = envelope.open_sealed(sealed, topic, [device], lambda kid: keys["staff"].sign.public_key())
    assert opened.body == body
    too_big = envelope.seal(_body_of_length(largest + 1), topic, keys["staff"].sign, device.public)
    assert len(too_big) > MAX_COMMAND_BYTES
    # every ASCII command the model accepts (16 args of 256 characters) fits, in both suites
    full = encode(_command("unlock", {f"k{i:031d}": "v" * 256 for i in range(16)}))
    assert len(envelope.seal(full, topic, keys["staff"].sign, device.public)) <= MAX_COMMAND_BYTES


# -- properties -----------------------------------------------------------------------------------
TOPIC_CHOICES = [topics.up(HOME, "alarm"), topics.up(HOME, "telemetry"), topics.ack(HOME), topics.command(HOME),
                 topics.lookin(HOME)]


@PROPS
@given(body=st.one_of(st.binary(max_size=3000), st.integers(0, MAX_ENVELOPE - 2000).map(lambda n: b"\x00" * n)),
       topic=st.sampled_from(TOPIC_CHOICES), pq=st.booleans())
def test_any_body_round_trips_in_the_smallest_size_that_holds_it(keys, body, topic, pq):
    recipient = keys["center_pq" if pq else "center"].kem
    signer = keys["device"].sign
    sealed = envelope.seal(body, topic, signer, recipient.public)
    assert len(sealed) in padding.sizes_for(topic)
    smaller = [s for s in padding.sizes_for(topic) if s < len(sealed)]
    assert not smaller or padding.max_signed(smaller[-1], recipient.suite_id) < len(body) + 72
    opened = envelope.open_sealed(sealed, topic, [recipient], lambda kid: signer.public_key())
    assert (opened.body, opened.version) == (body, VERSION)


@settings(max_examples=500, deadline=None)
@given(length=st.integers(0, MAX_ENVELOPE), suite_id=st.sampled_from([1, 2]), topic=st.sampled_from(TOPIC_CHOICES))
def test_any_length_lands_on_a_size(length, suite_id, topic):
    try:
        size = padding.envelope_size(length, suite_id, topic)
    except EnvelopeError:
        assert padding.max_signed(MAX_ENVELOPE, suite_id) < length
        return
    assert size in padding.sizes_for(topic) and size <= MAX_ENVELOPE
    assert padding.max_signed(size, suite_id) >= length
    assert len(padding.pad(b"s" * length, suite_id, topic)) + padding.overhead(suite_id) == size


def test_too_large_for_any_envelope_is_refused_when_sealing(keys):
    with pytest.raises(EnvelopeError, match="does not fit"):
        envelope.seal(b"x" * MAX_ENVELOPE, topics.lookin(HOME), keys["device"].sign, keys["center"].kem.public)


# -- padding that is not exactly right is refused ----------------------------------------------------
def _seal_plain(plain: bytes, topic: str, recipient: KemPrivate, version: int = VERSION) -> bytes:
    """Seal an arbitrary plaintext as a sender that does not follow the padding rules would."""
    header = HEADER.pack(version, recipient.suite_id, recipient.public.kid)
    info = b"trygg/v1 seal\x00" + topic.encode() + b"\x00" + header
    return header + suite(recipient.suite_id).encrypt(plain, recipient.public.hpke_key, info=info)


def _open(keys, data: bytes, topic: str):
    signer = keys["device"].sign
    return envelope.open_sealed(data, topic, [keys["center"].kem], lambda kid: signer.public_key())


@pytest.fixture
def signed(keys):
    topic = topics.up(HOME, "alarm")
    return topic, envelope.sign(b'{"kind":"fall"}', topic, keys["device"].sign)


def _room(keys) -> int:
    return padding.max_signed(padding.SIZES[0], keys["center"].kem.suite_id)


def test_well_formed_hand_padding_opens(keys, signed):
    """The control for the refusals below: the same hand-made framing, done right, opens."""
    topic, msg = signed
    plain = padding.LENGTH.pack(len(msg)) + msg + bytes(_room(keys) - len(msg))
    assert _open(keys, _seal_plain(plain, topic, keys["center"].kem), topic).body == b'{"kind":"fall"}'


@pytest.mark.parametrize("how,error", [
    ("nonzero", "non-zero padding byte"),
    ("last_nonzero", "non-zero padding byte"),
    ("overrun", "overruns"),
    ("short_length", "non-zero padding byte"),
    ("no_length", "overruns"),
    ("unpadded", "not a padded size"),
    ("wrong_size", "not a padded size"),
])
def test_malformed_padding_is_refused(keys, signed, how, error):
    topic, msg = signed
    room = _room(keys)
    zeros = bytes(room - len(msg))
    plain = {
        "nonzero": padding.LENGTH.pack(len(msg)) + msg + b"\x01" + zeros[1:],
        "last_nonzero": padding.LENGTH.pack(len(msg)) + msg + zeros[:-1] + b"\x80",
        "overrun": padding.LENGTH.pack(room + 1) + msg + zeros,
        "short_length": padding.LENGTH.pack(len(msg) - 1) + msg + zeros,  # the last signed byte left as padding
        "no_length": msg + zeros + bytes(4),  # padded but no length field: the key id is misread as one
        "unpadded": padding.LENGTH.pack(len(msg)) + msg,
        "wrong_size": padding.LENGTH.pack(len(msg)) + msg + zeros + bytes(1000),
    }[how]
    data = _seal_plain(plain, topic, keys["center"].kem)
    with pytest.raises(EnvelopeError, match=error):
        _open(keys, data, topic)


def test_a_picture_sized_as_a_small_message_is_refused(keys):
    """Pictures only come in the coarse sizes: a sender cannot leak a picture's size by a small bucket."""
    topic = topics.lookin(HOME)
    msg = envelope.sign(b"{}", topic, keys["device"].sign)
    plain = padding.LENGTH.pack(len(msg)) + msg + bytes(_room(keys) - len(msg))
    with pytest.raises(EnvelopeError, match="not a padded size"):
        _open(keys, _seal_plain(plain, topic, keys["center"].kem), topic)


@PROPS
@given(offset=st.integers(0, 1023), mask=st.integers(1, 255))
def test_any_flipped_byte_of_a_padded_envelope_is_refused(keys, offset, mask):
    topic = topics.up(HOME, "alarm")
    data = bytearray(envelope.seal(b'{"kind":"dose_missed"}', topic, keys["device"].sign, keys["center"].kem.public))
    data[offset] ^= mask
    with pytest.raises(EnvelopeError):
        _open(keys, bytes(data), topic)


def test_version_1_unpadded_envelopes_still_open_for_the_upgrade(keys, signed):
    """An alarm sealed before the upgrade waits in the outbox as version 1: it must still be delivered."""
    topic, msg = signed
    opened = _open(keys, _seal_plain(msg, topic, keys["center"].kem, version=LEGACY_VERSION), topic)
    assert (opened.body, opened.version) == (b'{"kind":"fall"}', LEGACY_VERSION)
    # ...but a version-1 header on padded bytes is not a padded message: the padding is part of the body
    plain = padding.LENGTH.pack(len(msg)) + msg + bytes(_room(keys) - len(msg))
    with pytest.raises(EnvelopeError):
        _open(keys, _seal_plain(plain, topic, keys["center"].kem, version=LEGACY_VERSION), topic)


def test_the_sizes_are_few_and_fixed():
    assert padding.SIZES == (1024, 2048, 4096, 8192, 16384, 32768, 65536, 262144, 524288, 1048576)
    assert padding.ENC_LEN == {1: 32, 2: 1120}

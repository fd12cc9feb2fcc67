"""Generate tests/vectors/commands_v1.json, the signed-command test vectors (docs/protocol.md §13).

Run once; the JSON is committed and is what tests/test_command_vectors.py and other
implementations check against. It reuses the device key of envelope_v1.json (make_vectors.py)
and adds a staff member's key and an unenrolled key, derived the same way. Everything is
deterministic except the HPKE seal, which draws a fresh ephemeral key each time: the sealed
envelopes are recorded once, so this script refuses to overwrite the JSON without --force.

    .venv/bin/python tests/vectors/make_command_vectors.py            # writes the JSON if absent
    .venv/bin/python tests/vectors/make_command_vectors.py --update   # add to it, keeping recorded envelopes
    .venv/bin/python tests/vectors/make_command_vectors.py --force    # regenerate (new envelopes)

The expected verdicts below are written down from the rules in docs/protocol.md, not computed
by running the device code: the test runs the real agent.commands.Commands and compares.

THE KEYS BELOW ARE THROWAWAY TEST KEYS, published on purpose. Each is the first 32 bytes of
SHA-512(b"trygg test vector v1: " + label). Never enrol them anywhere.
"""

import hashlib
import importlib.util
import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

from agent.audit import GENESIS, entry_hash
from agent.actions import DEFAULT_ROLES
from base.keys import PublicIdentity
from protocol import envelope, padding, topics
from protocol.envelope import HEADER, SIG_LEN
from protocol.ids import is_valid_id
from protocol.kem import KemPrivate, key_id
from protocol.messages import CommandMessage, EventMessage, decode, encode, iso

HERE = Path(__file__).resolve().parent
OUT = HERE / "commands_v1.json"


def _load_base():
    """make_vectors.py, by path: the device key, the home ids and the framing helpers come from there."""
    spec = importlib.util.spec_from_file_location("trygg_make_vectors", HERE / "make_vectors.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


base = _load_base()
LABEL_PREFIX = b"trygg test vector v1: "
HOME, OTHER_HOME = base.HOME, base.OTHER_HOME
STAFF_NAME = "vector-staff"
STAFF_LABEL, STAFF_KEM_LABEL, UNENROLLED_LABEL = "staff", "staff x25519", "unenrolled staff"

ISSUED = datetime(2026, 1, 15, 3, 20, 0, tzinfo=timezone.utc)
EXPIRES = ISSUED + timedelta(seconds=60)  # what trygg center sends: a 60 s lifetime
ARRIVAL = ISSUED + timedelta(seconds=5)  # the device's clock when a command arrives, unless a variant says otherwise
STALE_BOOT = datetime(2000, 1, 1, 0, 0, 5, tzinfo=timezone.utc)  # a Pi after a power cut, no NTP yet
CHALLENGE = hashlib.sha256(b"trygg test vector v1: challenge").hexdigest()[:32]
NEXT_CHALLENGE = hashlib.sha256(b"trygg test vector v1: next challenge").hexdigest()[:32]
WRONG_CHALLENGE = hashlib.sha256(b"trygg test vector v1: wrong challenge").hexdigest()[:32]
MAX_COMMAND_BYTES = 8 * 1024

# The device config the variants are judged under (the defaults, written out).
DEVICE_CONFIG = {
    "home": {"id": HOME, "timezone": "Europe/Stockholm"},
    "commands": {"max_lifetime_s": 300.0, "clock_skew_s": 30.0, "challenge_ttl_s": 600.0, "alarm_open_s": 3600.0,
                 "queue": 256, "refusals_audited_per_min": 30},
    "roles": DEFAULT_ROLES,
    "locks": {"front-door": {"unlock": {"night-staff": "alarm_or_visit", "nurse": "always"}, "visits": []}},
}


def seed(label: str) -> bytes:
    return hashlib.sha512(LABEL_PREFIX + label.encode()).digest()[:32]


def command_id(at: datetime, tail: str) -> str:
    """A UUIDv7 whose timestamp is `at` (ms); `tail` is the fixed rest: 3 + 4 + 12 hex digits."""
    ms = f"{int(at.timestamp() * 1000):012x}"
    text = f"{ms[:8]}-{ms[8:]}-7{tail[:3]}-{tail[3:7]}-{tail[7:]}"
    assert is_valid_id(text), text
    return text


CMD_ID = command_id(ISSUED, "c3d" "9e11" "d00000000001")
CMD_ID_NO_CHALLENGE = command_id(ISSUED, "c3d" "9e11" "d00000000002")
CMD_ID_LONG = command_id(ISSUED, "c3d" "9e11" "d00000000003")
CMD_ID_OTHER_HOME = command_id(ISSUED, "c3d" "9e11" "d00000000004")
CMD_ID_LARGEST = command_id(ISSUED, "c3d" "9e11" "d00000000005")
CMD_ID_LIFETIME_MAX = command_id(ISSUED, "c3d" "9e11" "d00000000006")
CMD_ID_HELP = command_id(ISSUED, "c3d" "9e11" "d00000000007")
CMD_ID_HELP_BOOL = command_id(ISSUED, "c3d" "9e11" "d00000000008")
CMD_ID_LOOKIN = command_id(ISSUED, "c3d" "9e11" "d00000000009")
CMD_ID_GRANT = command_id(ISSUED, "c3d" "9e11" "d0000000000a")
CMD_ID_GRANT_BOOL = command_id(ISSUED, "c3d" "9e11" "d0000000000b")
# The [lookin] of the look-in variants: a camera, look-ins at every hour (so no clock is needed),
# two a night, for night staff. Small pictures, one frame, blurred.
LOOKIN = {"camera": "synthetic", "width": 320, "height": 180, "burst": 1, "privacy": "blur", "max_per_night": 2,
          "roles": ["night-staff"], "windows": [{"start": "00:00", "end": "00:00"}], "times": [],
          "tolerance_s": 900}
RESULT_EVENT_ID = command_id(ARRIVAL, "e5a" "8e5a" "5e1f0a1b2c3d")  # the command_result example event


def _ed_entry(key: ed25519.Ed25519PrivateKey, label: str) -> dict:
    pub = key.public_key().public_bytes_raw()
    return {"label": label, "private_hex": key.private_bytes_raw().hex(), "public_hex": pub.hex(),
            "kid_hex": key_id(pub).hex()}


def _kem_entry(key: KemPrivate, label: str | None) -> dict:
    return {"label": label, "suite": key.suite_id, "private_hex": key.raw.hex(), "public_hex": key.public.raw.hex(),
            "kid_hex": key.public.kid.hex()}


def _seal_signed(signed: bytes, topic: str, recipient: KemPrivate, bad_padding: bool = False) -> bytes:
    """Pad and HPKE-seal an already signed message (so a deliberately bad signature, or padding
    with a non-zero byte, can be sealed); a recorded envelope of the same plaintext is kept (--update)."""
    plain = padding.pad(signed, recipient.suite_id, topic)
    if bad_padding:  # the last padding byte
        plain = plain[:-1] + b"\x01"
    return base.RECORDED.seal(plain, topic, recipient)


def _message(body: bytes, topic: str, signer: ed25519.Ed25519PrivateKey, signer_name: str, recipient: KemPrivate,
             description: str, tamper_signature: bool = False, bad_padding: bool = False) -> dict:
    signed = envelope.sign(body, topic, signer)
    if tamper_signature:
        signed = signed[:8] + bytes([signed[8] ^ 0x01]) + signed[9:]
    sealed = _seal_signed(signed, topic, recipient, bad_padding)
    header = sealed[: HEADER.size]
    assert len(sealed) in padding.SIZES
    if not (tamper_signature or bad_padding):  # self-check: it opens with the device key and yields the body
        opened = envelope.open_sealed(sealed, topic, [recipient], lambda kid: signer.public_key())
        assert opened.body == body
    return {
        "description": description,
        "topic": topic,
        "body_utf8": body.decode("utf-8"),
        "body_hex": body.hex(),
        "signer": signer_name,
        "signed_input_hex": base._sign_input(topic, body).hex(),
        "signed_hex": signed.hex(),
        "recipient": "device.kem_x25519",
        "header_hex": header.hex(),
        "info_hex": base._seal_info(topic, header).hex(),
        "plaintext_len": len(sealed) - padding.overhead(recipient.suite_id),
        "padding_len": len(sealed) - padding.overhead(recipient.suite_id) - padding.LENGTH.size - len(signed),
        "envelope_len": len(sealed),
        "envelope_hex": sealed.hex(),
    }


def _command(**changes) -> CommandMessage:
    fields = {"id": CMD_ID, "home": HOME, "action": "unlock", "args": {"lock": "front-door"}, "issued": ISSUED,
              "expires": EXPIRES, "challenge": CHALLENGE}
    fields.update(changes)
    return CommandMessage(**{k: v for k, v in fields.items() if v is not None})


def _largest_command() -> CommandMessage:
    """An unlock whose padded envelope is exactly MAX_COMMAND_BYTES: 15 extra string args of 4-byte
    characters (the policy refuses unknown args, but only after everything before it passed)."""
    extra = [f"x{i:02d}" for i in range(15)]
    want = padding.max_signed(MAX_COMMAND_BYTES, 1) - SIG_LEN - 8
    args = {"lock": "front-door", **{k: "" for k in extra}}
    left = want - len(encode(_command(id=CMD_ID_LARGEST, args=args)))
    for k in extra:
        take = min(left, 1020)
        args[k] = "\U0001d11e" * (take // 4) + {0: "", 1: "a", 2: "\u00f8", 3: "\u20ac"}[take % 4]
        left -= take
    cmd = _command(id=CMD_ID_LARGEST, args=args)
    assert len(encode(cmd)) == want and left == 0
    return cmd


def build() -> dict:
    device_sign = base._ed(base.DEVICE_ED25519)
    device_kem = KemPrivate(1, bytes.fromhex(base.DEVICE_X25519))
    staff_sign = ed25519.Ed25519PrivateKey.from_private_bytes(seed(STAFF_LABEL))
    staff_kem = KemPrivate(1, seed(STAFF_KEM_LABEL))
    unenrolled = ed25519.Ed25519PrivateKey.from_private_bytes(seed(UNENROLLED_LABEL))
    staff_kid = envelope.signer_kid(staff_sign.public_key()).hex()
    topic, other_topic = topics.command(HOME), topics.command(OTHER_HOME)

    cmd = _command()
    body = encode(cmd)
    assert encode(decode(body, CommandMessage)) == body
    main = _message(body, topic, staff_sign, "staff.sign", device_kem, "the command every variant starts from")
    main["model"] = "CommandMessage"
    main["fields"] = json.loads(body)

    def msg(command: CommandMessage, description: str, **kw) -> dict:
        return _message(encode(command), kw.pop("topic", topic), kw.pop("signer", staff_sign),
                        kw.pop("signer_name", "staff.sign"), device_kem, description, **kw)

    malformed = (body[:-1] + b',"note":"hello"}')  # signed by enrolled staff, but not a valid command
    others = {
        "no_challenge": msg(_command(id=CMD_ID_NO_CHALLENGE, challenge=None),
                            "the same unlock without a challenge (fresh only by a synchronized clock)"),
        "long_lifetime": msg(_command(id=CMD_ID_LONG, expires=ISSUED + timedelta(seconds=600)),
                             "expires 600 s after it was issued (max_lifetime_s is 300)"),
        "other_home_body": msg(_command(id=CMD_ID_OTHER_HOME, home=OTHER_HOME),
                               "sealed and signed for this home's topic, but the body names another home"),
        "unenrolled_signer": msg(cmd, "the command body, signed by a key not enrolled on the device",
                                 signer=unenrolled, signer_name="unenrolled.sign"),
        "bad_signature": msg(cmd, "the command with the first signature byte (offset 8 of the signed message) "
                                  "XORed with 0x01, then sealed correctly", tamper_signature=True),
        "sealed_for_other_home": msg(cmd, "the command signed and sealed for the other home's command topic "
                                          "(delivered on this home's topic)", topic=other_topic),
        "malformed": _message(malformed, topic, staff_sign, "staff.sign", device_kem,
                              "the command body with an extra field, signed by enrolled staff"),
        "largest": msg(_largest_command(), f"an unlock padded to exactly {MAX_COMMAND_BYTES} bytes, the most the "
                                           "device accepts: 15 extra args (refused by policy, after every other check)"),
        "bad_padding": msg(cmd, "the command, signed and sealed correctly, but the last padding byte is 0x01",
                           bad_padding=True),
        "lifetime_max": msg(_command(id=CMD_ID_LIFETIME_MAX, expires=ISSUED + timedelta(seconds=300)),
                            "expires exactly max_lifetime_s (300 s) after it was issued"),
        "help_coming": msg(_command(id=CMD_ID_HELP, action="help_coming", args={"minutes": 30}),
                           "help_coming: the light steady for 30 minutes"),
        "help_coming_bool": msg(_command(id=CMD_ID_HELP_BOOL, action="help_coming", args={"minutes": True}),
                                "help_coming with minutes true: a JSON boolean where an integer belongs"),
        "lookin": msg(_command(id=CMD_ID_LOOKIN, action="lookin", args={}), "a look-in (no arguments)"),
        "lookin_grant": msg(_command(id=CMD_ID_GRANT, action="lookin_grant", args={"max_per_night": 3}),
                            "a grant change: three look-ins a night"),
        "lookin_grant_bool": msg(_command(id=CMD_ID_GRANT_BOOL, action="lookin_grant", args={"max_per_night": True}),
                                 "a grant change with max_per_night true: a boolean is not a count"),
    }
    assert others["largest"]["envelope_len"] == MAX_COMMAND_BYTES
    for entry in others.values():
        entry["model"] = "CommandMessage"

    result_done = {"command": CMD_ID, "action": "unlock", "args": {"lock": "front-door"}, "outcome": "done",
                   "reason": "", "staff": STAFF_NAME, "role": "nurse", "lock": "front-door", "state": "unlocked"}
    result_done["code"] = ""
    result_refused = {"command": CMD_ID, "action": "unlock", "args": {"lock": "front-door"}, "outcome": "refused",
                      "code": "not_allowed.role",
                      "reason": "not allowed: role technician may not give the command 'unlock'",
                      "staff": STAFF_NAME, "role": "technician"}
    result_event = EventMessage(id=RESULT_EVENT_ID, home=HOME, cls="event", kind="command_result", time=ARRIVAL,
                                clock_synced=True, body=result_done)
    assert int(RESULT_EVENT_ID.replace("-", "")[:12], 16) == int(ARRIVAL.timestamp() * 1000)
    result_body = encode(result_event)
    event_topic = topics.up(HOME, "event")

    return {
        "format": "trygg-command-vectors-v1",
        "warning": "THROWAWAY TEST KEYS, public on purpose. Never enrol or deploy them.",
        "spec": "docs/protocol.md §13 (Commands)",
        "generator": "tests/vectors/make_command_vectors.py (HPKE sealing is randomized: envelopes recorded once)",
        "keys": {
            "device": {"sign": _ed_entry(device_sign, "device ed25519"),
                       "kem_x25519": _kem_entry(device_kem, "device x25519")},
            "staff": {"sign": _ed_entry(staff_sign, STAFF_LABEL), "kem_x25519": _kem_entry(staff_kem, STAFF_KEM_LABEL)},
            "unenrolled": {"sign": _ed_entry(unenrolled, UNENROLLED_LABEL)},
        },
        "key_derivation": "first 32 bytes of SHA-512(\"trygg test vector v1: \" + label); the device keys are "
                          "those of envelope_v1.json. No ML-KEM-768+X25519 device key exists in those vectors, "
                          "so commands are sealed to the device's X25519 key only.",
        "home": HOME,
        "other_home": OTHER_HOME,
        "staff": {"name": STAFF_NAME, "kid_hex": staff_kid,
                  "public_key_file": PublicIdentity(STAFF_NAME, staff_sign.public_key(), staff_kem.public).to_json()},
        "device_config": DEVICE_CONFIG,
        "challenges": {"current": CHALLENGE, "next": NEXT_CHALLENGE, "wrong": WRONG_CHALLENGE},
        "command": main,
        "messages": others,
        "variants": _variants(len(bytes.fromhex(main["envelope_hex"])), topic, other_topic, staff_kid),
        "command_result": {
            "class": "event",
            "kind": "command_result",
            "note": "body of the event the device sends back for every command verifiably signed by enrolled staff "
                    "(done, refused or failed); sealed to the center like any event. `code` is the verdict's stable "
                    "code (\"\" for done); `reason` is for people. `lock` and `state` come from "
                    "the lock driver (the test's recording lock returns {\"state\": \"unlocked\"}).",
            "examples": {"valid": result_done, "role technician may not unlock": result_refused},
            "event": {"topic": event_topic, "model": "EventMessage", "body_utf8": result_body.decode(),
                      "body_hex": result_body.hex(), "signer": "device.sign",
                      "signed_hex": envelope.sign(result_body, event_topic, device_sign).hex()},
        },
        "audit": _audit_example(staff_kid, len(bytes.fromhex(main["envelope_hex"]))),
    }


def _device(time: datetime = ARRIVAL, synced: bool = True, challenges: tuple = (CHALLENGE,), **extra) -> dict:
    return {"time": iso(time), "synced": synced, "challenges": list(challenges), "ticks_at": [], "arrives_at": 0.0,
            "alarm_open": False, "lookin": None, "link": "connected", "lookins_used": 0, **extra}


def _expect(outcome: str, code: str, reason: str = "", result_event: bool = True, **extra) -> dict:
    return {"outcome": outcome, "code": code, "reason_contains": reason, "result_event": result_event,
            "audit": extra.pop("audit", ["command"]), "picture": extra.pop("picture", False), **extra}


def _variants(envelope_len: int, topic: str, other_topic: str, staff_kid: str) -> list[dict]:
    """How each delivery must be judged. See tests/test_command_vectors.py for how each field is applied,
    and docs/protocol.md §13.13 for how to replay them.

    payload     "command" or a name under "messages"; `op` alters its envelope (flip byte `offset` with
                `mask`, a negative offset counting from the end; or append `append_zeros` zero bytes);
                delivered on `deliver_on`
    device      wall `time` at arrival and whether the clock is `synced`; `challenges`: what the device's
                challenge source returns, call after call (the last one repeats; the first is the
                challenge at start-up); `ticks_at`: seconds after start-up at which the periodic
                renewal check runs; `arrives_at`: seconds after start-up the command arrives (the
                monotonic clock; the wall clock moves with it and reads `time` on arrival);
                `alarm_open`: an alarm from this home was raised just before; `lookin`: the home's
                [lookin] (null: no camera, so no lookin or lookin_grant action); `link`: the uplink's
                state ("connected" or "down"); `lookins_used`: look-ins already done tonight
    staff       the enrolled member's role, and whether they were removed (revoked) before
    expect      one entry per delivery of the same bytes; `restart_first`: the daemon restarted
                (same trust.db) before this delivery. `code` is the verdict's stable code (the
                contract); `reason_contains` a substring of this implementation's reason (informative);
                `result_event`: whether a command_result event is reported for it; `audit`: the kinds
                of the audit entries it appends, in order; `picture`: whether a look-in picture is
                published (sealed to the member's key on trygg/v1/<home>/lookin)
    """
    refused, done, failed = "refused", "done", "failed"
    nurse, revoked = {"role": "nurse", "revoked": False}, {"role": "nurse", "revoked": True}
    night = {"role": "night-staff", "revoked": False}
    C, N, W = CHALLENGE, NEXT_CHALLENGE, WRONG_CHALLENGE
    replayed = ("replayed", "replayed: this command id was already received")
    no_op: dict = {}
    at_night = {**LOOKIN, "windows": [{"start": "22:00", "end": "06:00"}]}  # 03:20 UTC is 04:20 in Stockholm: inside
    by_day = {**LOOKIN, "windows": [{"start": "10:00", "end": "12:00"}]}
    cases = [
        ("valid", "command", no_op, topic, _device(), nurse, [_expect(done, "")]),
        ("replay of the same bytes (challenge source keeps returning the same challenge)", "command", no_op, topic,
         _device(), nurse, [_expect(done, ""), _expect(refused, *replayed, result_event=False)]),
        ("replay after the challenge was renewed by the first delivery", "command", no_op, topic,
         _device(challenges=(C, N)), nurse,
         [_expect(done, ""), _expect(refused, *replayed, result_event=False)]),
        ("replay of a command without challenge after a daemon restart", "no_challenge", no_op, topic, _device(), nurse,
         [_expect(done, ""), _expect(refused, *replayed, result_event=False, restart_first=True)]),
        ("flipped signature byte", "bad_signature", no_op, topic, _device(), nurse,
         [_expect(refused, "envelope.bad_signature", "envelope: bad signature", result_event=False)]),
        ("flipped ciphertext byte", "command", {"op": "flip", "offset": 60, "mask": 0x10}, topic, _device(), nurse,
         [_expect(refused, "envelope.does_not_open",
                  "envelope: envelope does not open (tampered, truncated or wrong topic)", result_event=False)]),
        ("flipped last tag byte", "command", {"op": "flip", "offset": -1, "mask": 0x01}, topic, _device(), nurse,
         [_expect(refused, "envelope.does_not_open", "envelope: envelope does not open", result_event=False)]),
        ("flipped recipient key id byte", "command", {"op": "flip", "offset": 2, "mask": 0x80}, topic, _device(), nurse,
         [_expect(refused, "envelope.unknown_recipient", "envelope: sealed to a key we do not hold",
                  result_event=False)]),
        ("wrong topic: delivered on another home's command topic", "command", no_op, other_topic, _device(), nurse,
         [_expect(refused, "wrong_topic", f"wrong topic: {other_topic!r}", result_event=False)]),
        ("sealed and signed for another home's topic, delivered on ours", "sealed_for_other_home", no_op, topic,
         _device(), nurse, [_expect(refused, "envelope.does_not_open", "envelope: envelope does not open",
                                    result_event=False)]),
        ("signed by a key that is not enrolled", "unenrolled_signer", no_op, topic, _device(), nurse,
         [_expect(refused, "envelope.unknown_signer", "envelope: signed by an unknown key", result_event=False)]),
        ("oversized: refused before any cryptography", "command",
         {"op": "append", "append_zeros": MAX_COMMAND_BYTES + 1 - envelope_len}, topic, _device(), nurse,
         [_expect(refused, "oversized", f"oversized: {MAX_COMMAND_BYTES + 1} bytes (limit {MAX_COMMAND_BYTES})",
                  result_event=False)]),
        ("padded to no allowed size: one zero byte appended", "command", {"op": "append", "append_zeros": 1},
         topic, _device(), nurse,
         [_expect(refused, "envelope.bad_size", f"envelope: envelope of {envelope_len + 1} bytes is not a padded size",
                  result_event=False)]),
        ("a non-zero padding byte inside a correctly sealed envelope", "bad_padding", no_op, topic, _device(), nurse,
         [_expect(refused, "envelope.bad_padding", "envelope: malformed padding: non-zero padding byte",
                  result_event=False)]),
        (f"the largest command the device accepts ({MAX_COMMAND_BYTES} bytes padded) is judged, not refused as "
         "oversized", "largest", no_op, topic, _device(), nurse,
         [_expect(refused, "not_allowed.argument", "not allowed: unknown argument(s) for unlock: x00, x01")]),
        ("malformed body from enrolled staff", "malformed", no_op, topic, _device(), nurse,
         [_expect(refused, "malformed.unknown_field", "malformed command: note: unknown field", result_event=False)]),
        ("body names another home", "other_home_body", no_op, topic, _device(), nurse,
         [_expect(refused, "wrong_home", f"command for home {OTHER_HOME!r}")]),
        ("staff revoked", "command", no_op, topic, _device(), revoked,
         [_expect(refused, "revoked", f"staff member {STAFF_NAME} is revoked")]),
        ("expired 60 s ago by a synchronized clock", "command", no_op, topic,
         _device(time=EXPIRES + timedelta(seconds=60)), nurse,
         [_expect(refused, "not_fresh.expired", "not fresh: expired 60 s ago by the device's clock")]),
        ("expired 20 s ago, within clock_skew_s (30 s)", "command", no_op, topic,
         _device(time=EXPIRES + timedelta(seconds=20)), nurse, [_expect(done, "")]),
        ("expired exactly clock_skew_s (30 s) ago: the bound is included", "command", no_op, topic,
         _device(time=EXPIRES + timedelta(seconds=30)), nurse, [_expect(done, "")]),
        ("expired 30.001 s ago: just past the bound", "command", no_op, topic,
         _device(time=EXPIRES + timedelta(seconds=30, milliseconds=1)), nurse,
         [_expect(refused, "not_fresh.expired", "not fresh: expired 30 s ago by the device's clock")]),
        ("issued 90 s in the future by a synchronized clock", "command", no_op, topic,
         _device(time=ISSUED - timedelta(seconds=90)), nurse,
         [_expect(refused, "not_fresh.future", "not fresh: issued 90 s in the future by the device's clock")]),
        ("issued exactly clock_skew_s (30 s) in the future: the bound is included", "command", no_op, topic,
         _device(time=ISSUED - timedelta(seconds=30)), nurse, [_expect(done, "")]),
        ("lifetime longer than max_lifetime_s", "long_lifetime", no_op, topic, _device(), nurse,
         [_expect(refused, "not_fresh.lifetime", "not fresh: lifetime 600 s exceeds the allowed 300 s")]),
        ("lifetime exactly max_lifetime_s: the bound is included", "lifetime_max", no_op, topic, _device(), nurse,
         [_expect(done, "")]),
        ("synchronized clock, wrong challenge (a challenge, when present, must match)", "command", no_op, topic,
         _device(challenges=(W,)), nurse, [_expect(refused, "not_fresh.challenge", "not fresh: stale or wrong challenge")]),
        ("synchronized clock, no challenge, inside the window", "no_challenge", no_op, topic, _device(), nurse,
         [_expect(done, "")]),
        ("unsynchronized (stale) clock, right challenge", "command", no_op, topic,
         _device(time=STALE_BOOT, synced=False), nurse, [_expect(done, "")]),
        ("unsynchronized clock, wrong challenge", "command", no_op, topic,
         _device(time=STALE_BOOT, synced=False, challenges=(W,)), nurse,
         [_expect(refused, "not_fresh.challenge", "not fresh: stale or wrong challenge (read the home's status again)")]),
        ("unsynchronized clock, no challenge", "no_challenge", no_op, topic, _device(time=STALE_BOOT, synced=False),
         nurse, [_expect(refused, "not_fresh.unsynced",
                         "not fresh: device clock not synchronized: the command must echo the challenge")]),
        ("previous challenge, 30 s after a timed renewal (within the 60 s grace)", "command", no_op, topic,
         _device(challenges=(C, N), ticks_at=[600.0], arrives_at=630.0), nurse, [_expect(done, "")]),
        ("previous challenge within its grace, then the same bytes again (the id is checked first)", "command",
         no_op, topic, _device(challenges=(C, N), ticks_at=[600.0], arrives_at=630.0), nurse,
         [_expect(done, ""), _expect(refused, *replayed, result_event=False)]),
        ("previous challenge, 61 s after a timed renewal (grace over)", "command", no_op, topic,
         _device(challenges=(C, N), ticks_at=[600.0], arrives_at=661.0), nurse,
         [_expect(refused, "not_fresh.challenge", "not fresh: stale or wrong challenge")]),
        ("previous challenge exactly 60 s after a timed renewal: the grace has ended (its end is excluded)",
         "command", no_op, topic, _device(challenges=(C, N), ticks_at=[600.0], arrives_at=660.0), nurse,
         [_expect(refused, "not_fresh.challenge", "not fresh: stale or wrong challenge")]),
        ("a renewal check 0.5 s before challenge_ttl_s renews nothing: the challenge is still current 61 s later",
         "command", no_op, topic, _device(challenges=(C, N), ticks_at=[599.5], arrives_at=661.0), nurse,
         [_expect(done, "")]),
        ("role technician may not unlock", "command", no_op, topic, _device(), {"role": "technician", "revoked": False},
         [_expect(refused, "not_allowed.role", "not allowed: role technician may not give the command 'unlock'")]),
        ("night-staff, no open alarm, no visit window", "command", no_op, topic, _device(), night,
         [_expect(refused, "not_allowed.no_alarm_or_visit",
                  "not allowed: role night-staff may unlock front-door only while an alarm is open "
                  "or inside a planned visit window")]),
        ("night-staff while an alarm from this home is open", "command", no_op, topic, _device(alarm_open=True),
         night, [_expect(done, "")]),
        ("night-staff, unsynchronized clock, no open alarm", "command", no_op, topic,
         _device(time=STALE_BOOT, synced=False), night,
         [_expect(refused, "not_allowed.no_alarm_or_visit",
                  "(visit windows cannot be checked: clock not synchronized)")]),
        # -- refused or failed by the action itself: no `not allowed:` prefix -----------------------
        ("help_coming in a home with no button light and no speaker: the action refuses (no prefix)",
         "help_coming", no_op, topic, _device(), nurse,
         [_expect(refused, "help_coming.nothing_to_tell", "this home has no help-coming light or speaker")]),
        ("help_coming with minutes true: the action's model refuses a boolean", "help_coming_bool", no_op, topic,
         _device(), nurse, [_expect(refused, "help_coming.bad_argument", "help_coming: minutes:")]),
        # -- look-ins (§14) ---------------------------------------------------------------------------------
        ("look-in by night staff inside the grant: a picture sealed to them", "lookin", no_op, topic,
         _device(lookin=LOOKIN), night, [_expect(done, "", picture=True)]),
        ("look-in inside a granted night window", "lookin", no_op, topic, _device(lookin=at_night), night,
         [_expect(done, "", picture=True)]),
        ("look-in outside the granted hours", "lookin", no_op, topic, _device(lookin=by_day), night,
         [_expect(refused, "lookin.outside_hours", "outside the granted look-in hours (10:00-12:00)")]),
        ("look-in with tonight's look-ins used", "lookin", no_op, topic, _device(lookin=LOOKIN, lookins_used=2), night,
         [_expect(refused, "lookin.used_up", "the 2 look-in(s) granted for tonight are used")]),
        ("look-in with the link down: never queued", "lookin", no_op, topic, _device(lookin=LOOKIN, link="down"),
         night, [_expect(refused, "lookin.link_down", "the home's link is down: a look-in is not queued")]),
        ("look-in with an unsynchronized clock, the grant not for every hour", "lookin", no_op, topic,
         _device(lookin=at_night, time=STALE_BOOT, synced=False), night,
         [_expect(refused, "lookin.unsynced", "device clock not synchronized: the granted look-in hours")]),
        ("look-in by a role the grant does not name", "lookin", no_op, topic,
         _device(lookin={**LOOKIN, "roles": ["nurse"]}, ), night,
         [_expect(refused, "lookin.role", "the resident's grant does not let role night-staff look in")]),
        ("look-in by a nurse: the role does not list lookin", "lookin", no_op, topic, _device(lookin=LOOKIN), nurse,
         [_expect(refused, "not_allowed.role", "not allowed: role nurse may not give the command 'lookin'")]),
        ("look-in in a home without a camera: no such action on this device", "lookin", no_op, topic, _device(),
         night, [_expect(failed, "unsupported", "this device cannot lookin")]),
        ("grant change by a nurse", "lookin_grant", no_op, topic, _device(lookin=LOOKIN), nurse,
         [_expect(done, "", audit=["lookin_grant_changed", "command"])]),
        ("grant change with max_per_night true", "lookin_grant_bool", no_op, topic, _device(lookin=LOOKIN), nurse,
         [_expect(refused, "lookin_grant.invalid", "lookin_grant: max_per_night:")]),
        ("grant change by night staff: the role does not list lookin_grant", "lookin_grant", no_op, topic,
         _device(lookin=LOOKIN), night,
         [_expect(refused, "not_allowed.role", "not allowed: role night-staff may not give the command 'lookin_grant'")]),
    ]
    out = []
    for name, payload, op, deliver_on, device, staff, expect in cases:
        out.append({"name": name, "payload": payload, **op, "deliver_on": deliver_on, "device": device,
                    "staff": staff, "expect": expect})
    assert staff_kid and len({v["name"] for v in out}) == len(out)
    return out


def _audit_example(staff_kid: str, envelope_len: int) -> dict:
    """The audit trail after the `valid` variant: enrolment, then the command, hash-chained."""
    when = ARRIVAL.timestamp()
    entries = []
    prev = GENESIS
    for seq, (kind, detail) in enumerate([
        ("staff_added", {"name": STAFF_NAME, "role": "nurse", "kid": staff_kid, "replaced": False}),
        ("command", {"outcome": "done", "code": "", "reason": "", "bytes": envelope_len, "command": CMD_ID,
                     "action": "unlock",
                     "staff": STAFF_NAME, "role": "nurse"}),
    ], start=1):
        detail_json = json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        content = json.dumps([seq, repr(float(when)), True, kind, detail_json], separators=(",", ":"))
        digest = hashlib.sha256(f"{prev}\n{content}".encode()).hexdigest()
        assert digest == entry_hash(prev, seq, when, True, kind, detail_json)
        entries.append({"entry": {"seq": seq, "time": when, "synced": True, "kind": kind, "detail": detail,
                                  "prev": prev, "hash": digest, "sealed": None},
                        "detail_json": detail_json, "hash_input_utf8": f"{prev}\n{content}"})
        prev = digest
    return {
        "note": "after the `valid` variant (staff enrolled as nurse, then the unlock), both at the device time "
                "of arrival with a synchronized clock; each entry is also the body of an `audit` event. These are "
                "plain-form entries (`sealed` null), as an audit log without the at-rest keys writes them; the "
                "daemon seals each detail to the center (docs/operations.md, At rest)",
        "entries": entries,
    }


def main(argv: list[str] | None = None) -> int:
    return base.write_vectors(__doc__.splitlines()[0], OUT, build, argv)


if __name__ == "__main__":
    sys.exit(main())

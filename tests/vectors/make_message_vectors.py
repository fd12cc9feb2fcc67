"""Generate tests/vectors/messages_v1.json: every message kind, and how strict decoding is (docs/protocol.md §6).

Run once; the JSON is committed and is what tests/test_message_vectors.py and other
implementations check against. Two parts:

- `messages`: one canonical body of every kind the protocol has (an event of each class, the
  look-in plan and an audit entry as event bodies, an ack, an online status with every field and
  the fleet report sealed inside it, an offline status, a command for every action, a look-in
  picture sealed to the staff member), each with its signature, and sealed where it travels
  sealed. An implementation must decode each, and re-encode it to the same bytes.
- `refused`: bodies with one fault each, and the refusal code (protocol/refusals.py DECODE) the
  fault must get; `accepted`: bodies at the edge of a rule, which must decode.

The expected codes are written down from docs/protocol.md §6.4, not computed by running the
decoder: the test runs the real protocol.messages.decode and compares. HPKE sealing is
randomized, so sealed envelopes are recorded; the script refuses to overwrite the JSON without
--update (keep recorded envelopes whose inputs are unchanged) or --force.

    .venv/bin/python tests/vectors/make_message_vectors.py [--update | --force]

THE KEYS ARE THROWAWAY TEST KEYS, published on purpose (the same labels as envelope_v1.json and
commands_v1.json). Never enrol them anywhere.
"""

import base64
import hashlib
import importlib.util
import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

from protocol import envelope, topics
from protocol.fleet import open_report
from protocol.kem import KemPrivate, key_id
from protocol.lookin import LookinPlan
from protocol.messages import (AckMessage, CommandMessage, EventMessage, FleetReport, LookinMessage, OutboxClass,
                               OutboxDepths, StatusMessage, decode, encode)

HERE = Path(__file__).resolve().parent
OUT = HERE / "messages_v1.json"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"trygg_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


base = _load("make_vectors")
HOME = base.HOME
T = datetime(2026, 1, 15, 3, 30, 0, tzinfo=timezone.utc)
CHALLENGE = hashlib.sha256(b"trygg test vector v1: challenge").hexdigest()[:32]
# An 8x8 grey JPEG (OpenCV, quality 50): a look-in picture's frame, small enough to read.
JPEG = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300100b0c0e0c0a100e0d0e1211101318281a181616183123251d283a33"
    "3d3c3933383740485c4e404457453738506d51575f626768673e4d71797064785c656763ffc0000b080008000801011100ffc4001f00"
    "00010501010101010100000000000000000102030405060708090a0bffc400b5100002010303020403050504040000017d0102030004"
    "1105122131410613516107227114328191a1082342b1c11552d1f02433627282090a161718191a25262728292a3435363738393a4344"
    "45464748494a535455565758595a636465666768696a737475767778797a838485868788898a92939495969798999aa2a3a4a5a6a7a8"
    "a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9faffda0008010100"
    "003f00e63fe24bff0008d7fd457fe07fdfff00be7eed7fffd9")
LABELS = {"device.sign": "device ed25519", "device.kem_x25519": "device x25519", "center.sign": "center ed25519",
          "center.kem_x25519": "center x25519", "staff.sign": "staff", "staff.kem_x25519": "staff x25519"}


def _id(at: datetime, n: int) -> str:
    ms = f"{int(at.timestamp() * 1000):012x}"
    return f"{ms[:8]}-{ms[8:]}-7a00-8000-{n:012x}"


def _keys() -> dict:
    out: dict = {}
    for name, label in LABELS.items():
        who, which = name.split(".")
        seed = base.derive(label)
        if which == "sign":
            key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
            pub = key.public_key().public_bytes_raw()
            entry = {"label": label, "private_hex": seed.hex(), "public_hex": pub.hex(), "kid_hex": key_id(pub).hex()}
        else:
            kem = KemPrivate(1, seed)
            entry = {"label": label, "suite": 1, "private_hex": seed.hex(), "public_hex": kem.public.raw.hex(),
                     "kid_hex": kem.public.kid.hex()}
        out.setdefault(who, {})[which] = entry
    return out


def _ed(name: str) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.from_private_bytes(base.derive(LABELS[name]))


def _kem(name: str) -> KemPrivate:
    return KemPrivate(1, base.derive(LABELS[name]))


def _entry(kind: str, message, topic: str, signer: str, description: str, recipient: str | None = None) -> dict:
    body = encode(message)
    assert encode(decode(body, type(message))) == body
    signed = envelope.sign(body, topic, _ed(signer))
    entry = {"kind": kind, "model": type(message).__name__, "description": description, "topic": topic,
             "body_utf8": body.decode("utf-8"), "signer": signer, "signed_hex": signed.hex()}
    if recipient is not None:
        from protocol import padding
        kem = _kem(recipient)
        sealed = base.RECORDED.seal(padding.pad(signed, kem.suite_id, topic), topic, kem)
        opened = envelope.open_sealed(sealed, topic, [kem], lambda kid: _ed(signer).public_key())
        assert opened.body == body
        entry.update({"recipient": recipient, "envelope_len": len(sealed), "envelope_hex": sealed.hex()})
    return entry


def _event(cls: str, kind: str, body: dict, n: int) -> EventMessage:
    return EventMessage(id=_id(T, n), home=HOME, cls=cls, kind=kind, time=T, clock_synced=True, body=body)


def _command(action: str, args: dict, n: int) -> CommandMessage:
    return CommandMessage(id=_id(T, 100 + n), home=HOME, action=action, args=args, issued=T,
                          expires=T + timedelta(seconds=60), challenge=CHALLENGE)


PLAN = LookinPlan(camera="synthetic", timezone="Europe/Stockholm", times=["23:00", "03:00"], tolerance_s=900.0,
                  windows=[{"start": "22:00", "end": "06:00", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}],
                  max_per_night=2, privacy="blur", roles=["night-staff"])
REPORT = FleetReport(home=HOME, time=T, version="0.1.0",
                     outbox=OutboxDepths(alarm=OutboxClass(depth=0), event=OutboxClass(depth=2, oldest_age_s=4),
                                         telemetry=OutboxClass(depth=0)),
                     unacked_alarms=0, drivers_down=[], faults=["camera"], cpu_temp_c=48.3,
                     disk_free_bytes=12345678901, under_voltage=False, under_voltage_seen=False, clock_synced=True,
                     cert_expires=datetime(2027, 1, 1, tzinfo=timezone.utc))


def _messages() -> dict:
    up = topics.up
    audit_entry = {"seq": 7, "time": 1768447800.0, "synced": True, "kind": "command",
                   "detail": {"outcome": "refused", "code": "not_fresh.expired", "reason": "not fresh: expired 90 s ago",
                              "bytes": 1024, "command": _id(T, 101), "action": "lock", "staff": "vector-staff",
                              "role": "nurse"},
                   "prev": "0" * 64, "hash": hashlib.sha256(b"an example; recompute as docs/protocol.md 13.10").hexdigest(),
                   "sealed": None}
    out = {
        "event_alarm": _entry("event", _event("alarm", "help", {"button": "wrist"}, 1), up(HOME, "alarm"),
                              "device.sign", "an alarm: the wrist button", "center.kem_x25519"),
        "event_event": _entry("event", _event("event", "dose_taken", {"slot": "08:00", "late_s": 0}, 2),
                              up(HOME, "event"), "device.sign", "an ordinary event"),
        "event_telemetry": _entry("event", _event("telemetry", "device_health", {"uptime_s": 86400, "load": 0.25}, 3),
                                  up(HOME, "telemetry"), "device.sign", "telemetry"),
        "event_test": _entry("event", _event("test", "test", {"simulated": True, "tests": "alarm"}, 4),
                             up(HOME, "test"), "device.sign", "an installation test: class test, kind test"),
        "event_lookin_plan": _entry("event", _event("event", "lookin_plan", PLAN.model_dump(mode="json"), 5),
                                    up(HOME, "event"), "device.sign",
                                    "the look-in plan (its body is a LookinPlan, §14.3)", "center.kem_x25519"),
        "event_audit": _entry("event", _event("event", "audit", audit_entry, 6), up(HOME, "event"), "device.sign",
                              "an audit entry as an event body (§13.10; the hash here is a placeholder)"),
        "ack": _entry("ack", AckMessage(home=HOME, ids=[_id(T, 1), _id(T, 2)], time=T), topics.ack(HOME),
                      "center.sign", "an ack of two events"),
        "fleet_report": _entry("fleet_report", REPORT, topics.status(HOME), "device.sign",
                               "the fleet report as it is sealed inside an online status", "center.kem_x25519"),
        "status_offline": _entry("status", StatusMessage(home=HOME, state="offline", time=T, heartbeat_s=60),
                                 topics.status(HOME), "device.sign", "an offline status (the last will)"),
    }
    report_text = base64.b64encode(bytes.fromhex(out["fleet_report"]["envelope_hex"])).decode()
    # what the device's seal_report makes: the report signed, padded, sealed to the center on the status topic
    assert open_report(report_text, topics.status(HOME), [_kem("center.kem_x25519")],
                       lambda kid: _ed("device.sign").public_key()) == REPORT
    out["status_online"] = _entry(
        "status", StatusMessage(home=HOME, state="online", time=T, heartbeat_s=60, clock_synced=True,
                                challenge=CHALLENGE, storage="ok", free_bytes=12345678901, report=report_text),
        topics.status(HOME), "device.sign", "an online status with every field; `report` is the fleet_report vector's "
                                            "envelope as base64")
    actions = {
        "unlock": {"lock": "front-door"}, "lock": {"lock": "front-door"}, "ping": {}, "status": {},
        "switch_center_key": {"kid": "0123456789abcdef"}, "lookin": {},
        "lookin_grant": {"privacy": "silhouette", "max_per_night": 3, "roles": "night-staff,nurse",
                         "windows": "22:00-06:00", "times": "23:00,03:00", "tolerance_s": 600},
        "help_coming": {"case": "0193c5a8-1e4f-7bb2-9c1d-3e5f7a9b1c2d", "minutes": 30},
    }
    for n, (action, args) in enumerate(actions.items()):
        out[f"command_{action}"] = _entry("command", _command(action, args, n), topics.command(HOME), "staff.sign",
                                          f"a {action} command, with every argument it takes")
    picture = LookinMessage(home=HOME, command=_id(T, 105), staff="vector-staff", time=T + timedelta(seconds=2),
                            privacy="blur", width=8, height=8, frames=[base64.b64encode(JPEG).decode()])
    out["lookin"] = _entry("lookin", picture, topics.lookin(HOME), "device.sign",
                           "a look-in picture answering command_lookin: one 8x8 JPEG frame, standard base64 with "
                           "padding; sealed to the staff member's key, padded to 262 144 bytes", "staff.kem_x25519")
    return out


def _text(obj: dict) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _refused(messages: dict) -> tuple[list[dict], list[dict]]:
    """Bodies with one fault each (the code it must get), and bodies at the edge of a rule (accepted)."""
    ev = json.loads(messages["event_event"]["body_utf8"])
    ev_text = messages["event_event"]["body_utf8"]
    ack = json.loads(messages["ack"]["body_utf8"])
    online = json.loads(messages["status_online"]["body_utf8"])
    offline = json.loads(messages["status_offline"]["body_utf8"])
    report = json.loads(messages["fleet_report"]["body_utf8"])
    cmd = json.loads(messages["command_unlock"]["body_utf8"])
    pic = json.loads(messages["lookin"]["body_utf8"])
    plan = json.loads(messages["event_lookin_plan"]["body_utf8"])["body"]
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(8)).decode()
    frame = pic["frames"][0]
    # the last data character before the = padding has unused low bits: set the lowest (same bytes, other text)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = len(frame.rstrip("=")) - 1
    assert frame.endswith("=") and alphabet.index(frame[last]) % 2 == 0
    noncanonical = frame[:last] + alphabet[alphabet.index(frame[last]) + 1] + frame[last + 1:]
    assert base64.b64decode(noncanonical) == base64.b64decode(frame) and noncanonical != frame

    def body(obj: dict, **changes) -> str:
        return _text({**obj, **changes})

    def without(obj: dict, key: str) -> str:
        return _text({k: v for k, v in obj.items() if k != key})

    def nested(depth: int) -> str:
        """The event with body {"deep": [[...[1]...]]}: the 1 is inside `depth` arrays and objects."""
        inner = "[" * (depth - 2) + "1" + "]" * (depth - 2)
        return ev_text.replace('"body":{"late_s":0,"slot":"08:00"}', '"body":{"deep":' + inner + "}")

    def in_body(raw: str) -> str:
        """The event with `raw` JSON text as its body's only member, "x"."""
        return ev_text.replace('"body":{"late_s":0,"slot":"08:00"}', '"body":{"x":' + raw + "}")

    R = []  # (kind, case, body text or bytes, code or [codes], where)

    def no(kind: str, case: str, raw, code, where: str = "") -> None:
        R.append((kind, case, raw, code, where))

    # -- JSON itself (wirejson): every kind is read this way first --------------------------------------
    no("event", "not UTF-8: a byte 0xff inside a string", in_body('"a\udcffb"').encode("utf-8", "surrogateescape"),
       "bad_utf8")
    no("event", "UTF-16 with a byte order mark (only UTF-8 is read)", ev_text.encode("utf-16"), "bad_utf8")
    no("event", "a UTF-8 byte order mark before the JSON", "\ufeff" + ev_text, "bad_json")
    no("event", "a trailing comma", ev_text[:-1] + ",}", "bad_json")
    no("event", "a second JSON value after the first", ev_text + " {}", "bad_json")
    no("event", "single quotes", ev_text.replace('"v":1', "'v':1"), "bad_json")
    no("event", "a comment", ev_text.replace('"v":1', '"v":1 /* one */'), "bad_json")
    no("event", "empty", "", "bad_json")
    no("event", "nested 33 deep (a value inside 33 arrays and objects)", nested(33), "too_deep")
    no("event", "the same key twice at the top (same value)", ev_text[:-1] + ',"v":1}', "duplicate_key")
    no("event", "the same key twice inside body", in_body('{"a":1,"a":2}'), "duplicate_key")
    no("event", "the same key twice, once written with a \\u escape", in_body('{"a":1,"\\u0061":2}'), "duplicate_key")
    no("event", "NaN in body", in_body("NaN"), "non_finite")
    no("event", "Infinity in body", in_body("Infinity"), "non_finite")
    no("event", "-Infinity in body", in_body("-Infinity"), "non_finite")
    no("event", "a number beyond a 64-bit float (1e999)", in_body("1e999"), "non_finite")
    no("event", "an integer 2^53 + 1", in_body("9007199254740993"), "int_range")
    no("event", "an integer -(2^53 + 1)", in_body("-9007199254740993"), "int_range")
    no("event", "an integer of 400 digits", in_body("1" * 400), "int_range")
    no("event", "a lone high surrogate escape", in_body('"\\ud800"'), "lone_surrogate")
    no("event", "a lone low surrogate escape in a key", in_body('{"\\udc00":1}'), "lone_surrogate")
    no("event", "a top-level array", "[" + ev_text + "]", "wrong_type")
    no("event", "a top-level string", '"event"', "wrong_type")
    no("event", "a top-level null", "null", "wrong_type")
    filler = in_body('""')
    no("event", "65 537 bytes (over the limit of every kind but a picture; a valid event otherwise)",
       in_body('"' + "x" * (65537 - len(filler)) + '"'), "too_large")
    # -- one spelling per field, JSON types as declared --------------------------------------------
    no("event", "v true", body(ev, v=True), "wrong_type", "v")
    no("event", "v 1.0", ev_text.replace('"v":1', '"v":1.0'), "wrong_type", "v")
    no("event", "v 1e0", ev_text.replace('"v":1', '"v":1e0'), "wrong_type", "v")
    no("event", 'v "1"', body(ev, v="1"), "wrong_type", "v")
    no("event", "v 2", body(ev, v=2), "bad_value", "v")
    no("event", "v missing", without(ev, "v"), "missing_field", "v")
    no("event", "t missing", without(ev, "t"), "missing_field", "t")
    no("event", "body missing (the encoder always writes it)", without(ev, "body"), "missing_field", "body")
    no("event", 't "ack" in an event', body(ev, t="ack"), "bad_value", "t")
    no("event", "t 1", body(ev, t=1), "wrong_type", "t")
    no("event", "cls instead of class", _text({("cls" if k == "class" else k): v for k, v in ev.items()}),
       ["unknown_field", "missing_field"], "cls")
    no("event", "cls as well as class", body(ev, cls="event"), "unknown_field", "cls")
    no("event", "an unknown field", body(ev, note="hello"), "unknown_field", "note")
    no("event", "class urgent", body(ev, **{"class": "urgent"}), "bad_value", "class")
    no("event", "class test with kind fall (test travels as test only)", body(ev, **{"class": "test"}, kind="fall"),
       "bad_value")
    no("event", "class alarm with kind test", body(ev, **{"class": "alarm"}, kind="test"), "bad_value")
    no("event", "kind with a capital", body(ev, kind="Dose_taken"), "bad_value", "kind")
    no("event", "kind 1", body(ev, kind=1), "wrong_type", "kind")
    no("event", "kind null", body(ev, kind=None), "wrong_type", "kind")
    no("event", "id a UUIDv4", body(ev, id="9b2e4f0c-1d3a-4e5b-8c7d-6f5e4d3c2b1a"), "bad_value", "id")
    no("event", "id in capitals", body(ev, id=ev["id"].upper()), "bad_value", "id")
    no("event", "home with a capital", body(ev, home="Vector-home-1"), "bad_value", "home")
    no("event", "time with +00:00", body(ev, time="2026-01-15T03:30:00.000+00:00"), "bad_value", "time")
    no("event", "time without milliseconds", body(ev, time="2026-01-15T03:30:00Z"), "bad_value", "time")
    no("event", "time with microseconds", body(ev, time="2026-01-15T03:30:00.000000Z"), "bad_value", "time")
    no("event", "time with a lower-case z", body(ev, time="2026-01-15T03:30:00.000z"), "bad_value", "time")
    no("event", "time with a space for T", body(ev, time="2026-01-15 03:30:00.000Z"), "bad_value", "time")
    no("event", "time on 30 February", body(ev, time="2026-02-30T03:30:00.000Z"), "bad_value", "time")
    no("event", "time as Unix seconds", body(ev, time=1768447800), "wrong_type", "time")
    no("event", "clock_synced 1", body(ev, clock_synced=1), "wrong_type", "clock_synced")
    no("event", 'clock_synced "true"', body(ev, clock_synced="true"), "wrong_type", "clock_synced")
    no("event", "body an array", body(ev, body=[]), "wrong_type", "body")
    no("event", "body null", body(ev, body=None), "wrong_type", "body")
    no("ack", "no ids", body(ack, ids=[]), "bad_value", "ids")
    no("ack", "1001 ids", body(ack, ids=[ack["ids"][0]] * 1001), "bad_value", "ids")
    no("ack", "an id that is not a UUIDv7", body(ack, ids=[ack["ids"][0], "x"]), "bad_value", "ids.1")
    no("ack", "ids a string", body(ack, ids=ack["ids"][0]), "wrong_type", "ids")
    no("status", "an offline status with a challenge", body(offline, challenge=CHALLENGE), "online_only", "challenge")
    no("status", "an offline status with clock_synced", body(offline, clock_synced=False), "online_only",
       "clock_synced")
    no("status", "an offline status with storage", body(offline, storage="ok"), "online_only", "storage")
    no("status", "an offline status with free_bytes", body(offline, free_bytes=1), "online_only", "free_bytes")
    no("status", "an offline status with a report", body(offline, report=online["report"]), "online_only", "report")
    no("status", "challenge null (an unset field is left out)", body(online, challenge=None), "wrong_type", "challenge")
    no("status", "challenge in capitals", body(online, challenge=CHALLENGE.upper()), "bad_value", "challenge")
    no("status", "heartbeat_s 60.0", _text(online).replace('"heartbeat_s":60', '"heartbeat_s":60.0'), "wrong_type",
       "heartbeat_s")
    no("status", "heartbeat_s 0", body(online, heartbeat_s=0), "bad_value", "heartbeat_s")
    no("status", "heartbeat_s true", body(online, heartbeat_s=True), "wrong_type", "heartbeat_s")
    no("status", "state away", body(online, state="away"), "bad_value", "state")
    no("status", "report without its = padding", body(online, report=online["report"].rstrip("=")), "bad_value",
       "report")
    urlsafe = online["report"].replace("+", "-").replace("/", "_")
    assert urlsafe != online["report"]
    no("status", "report in the URL-safe alphabet", body(online, report=urlsafe), "bad_value", "report")
    no("status", "report with a line break", body(online, report=online["report"][:76] + "\n" + online["report"][76:]),
       "bad_value", "report")
    no("fleet_report", "cpu_temp_c as a string", body(report, cpu_temp_c="48.3"), "wrong_type", "cpu_temp_c")
    no("fleet_report", "cpu_temp_c true", body(report, cpu_temp_c=True), "wrong_type", "cpu_temp_c")
    no("fleet_report", "cpu_temp_c NaN", _text(report).replace('"cpu_temp_c":48.3', '"cpu_temp_c":NaN'), "non_finite")
    no("fleet_report", "outbox without event", body(report, outbox={"alarm": {"depth": 0}, "telemetry": {"depth": 0}}),
       "missing_field", "outbox.event")
    no("fleet_report", "oldest_age_s null", body(report, outbox={**report["outbox"], "alarm": {"depth": 0,
                                                                                             "oldest_age_s": None}}),
       "wrong_type", "outbox.alarm.oldest_age_s")
    no("fleet_report", "a component named twice", body(report, faults=["camera", "camera"]), "bad_value", "faults")
    no("fleet_report", "a fault null", body(report, faults=[None]), "wrong_type", "faults.0")
    no("command", "args missing (the encoder always writes it)", without(cmd, "args"), "missing_field", "args")
    no("command", "an argument 1.5", body(cmd, args={"lock": 1.5}), "wrong_type", "args.lock")
    no("command", "an argument null", body(cmd, args={"lock": None}), "wrong_type", "args.lock")
    no("command", "an argument an object", body(cmd, args={"lock": {"name": "front-door"}}), "wrong_type", "args.lock")
    no("command", "17 arguments", body(cmd, args={f"a{i}": i for i in range(17)}), "bad_value", "args")
    no("command", "an argument name with a capital", body(cmd, args={"Lock": "front-door"}), "bad_value", "args.Lock")
    no("command", "an integer argument beyond 2^53 (JSON)",
       _text(cmd).replace('"args":{"lock":"front-door"}', '"args":{"n":9007199254740993}'), "int_range")
    no("command", "challenge null", body(cmd, challenge=None), "wrong_type", "challenge")
    no("command", "action with a capital", body(cmd, action="Unlock"), "bad_value", "action")
    no("command", "expires as +01:00", body(cmd, expires="2026-01-15T04:31:00.000+01:00"), "bad_value", "expires")
    no("lookin", "no frames", body(pic, frames=[]), "bad_value", "frames")
    no("lookin", "six frames", body(pic, frames=[frame] * 6), "bad_value", "frames")
    no("lookin", "a frame that is not base64", body(pic, frames=["!!!!" + frame[4:]]), "bad_value", "frames.0")
    no("lookin", "a frame without its = padding", body(pic, frames=[frame.rstrip("=")]), "bad_value", "frames.0")
    no("lookin", "a frame in the URL-safe alphabet", body(pic, frames=[frame.replace("/", "_")]), "bad_value",
       "frames.0")
    no("lookin", "a frame whose last character has unused bits set (not canonical)", body(pic, frames=[noncanonical]),
       "bad_value", "frames.0")
    no("lookin", "a frame that is a PNG, not a JPEG", body(pic, frames=[png]), "bad_value", "frames.0")
    no("lookin", "width 0", body(pic, width=0), "bad_value", "width")
    no("lookin", "width 8.0", _text(pic).replace('"width":8', '"width":8.0'), "wrong_type", "width")
    no("lookin", "privacy sepia", body(pic, privacy="sepia"), "bad_value", "privacy")
    no("lookin", "staff missing", without(pic, "staff"), "missing_field", "staff")
    no("lookin_plan", "a window without days (the device always writes them)",
       body(plan, windows=[{"start": "22:00", "end": "06:00"}]), "missing_field", "windows.0.days")
    no("lookin_plan", 'tolerance_s "900"', body(plan, tolerance_s="900"), "wrong_type", "tolerance_s")
    no("lookin_plan", "max_per_night 2.0", _text(plan).replace('"max_per_night":2', '"max_per_night":2.0'),
       "wrong_type", "max_per_night")
    no("lookin_plan", "a time 25:00", body(plan, times=["25:00"]), "bad_value", "times.0")
    no("lookin_plan", "camera gopro", body(plan, camera="gopro"), "bad_value", "camera")
    no("lookin_plan", "roles null", body(plan, roles=None), "wrong_type", "roles")
    no("lookin_plan", "an unknown field", body(plan, note="x"), "unknown_field", "note")

    refused = []
    for kind, case, raw, code, where in R:
        entry = {"kind": kind, "case": case}
        if isinstance(raw, bytes):
            try:
                entry["body_utf8"] = raw.decode("utf-8")
            except UnicodeDecodeError:
                entry["body_hex"] = raw.hex()
        else:
            entry["body_utf8"] = raw
        entry["codes"] = code if isinstance(code, list) else [code]
        if where:
            entry["where"] = where
        refused.append(entry)

    accepted = [
        ("event", "a value inside exactly 32 arrays and objects", nested(32)),
        ("event", "integers 2^53 and -2^53", in_body("[9007199254740992,-9007199254740992]")),
        ("event", "the largest finite double and the smallest subnormal", in_body("[1.7976931348623157e308,5e-324]")),
        ("event", "a surrogate pair escape (one character, U+1F600)", in_body('"\\ud83d\\ude00"')),
        ("event", "escapes for ordinary characters and whitespace between tokens (not canonical, read alike)",
         " " + ev_text.replace(',"', ' ,\n "').replace('":', '" : ').replace('"dose_taken"', '"dose\\u005ftaken"')
         + "\n"),
        ("event", "keys in another order than the encoder's",
         json.dumps(dict(reversed(list(ev.items()))), separators=(",", ":"), ensure_ascii=False)),
        ("event", "null inside the free-form body", in_body("null")),
        ("status", "an online status with none of the optional fields",
         _text({k: v for k, v in online.items() if k in ("v", "t", "home", "state", "time", "heartbeat_s")})),
        ("fleet_report", "cpu_temp_c an integer (a number may be one)", body(report, cpu_temp_c=48)),
        ("fleet_report", "no measurements at all", _text({k: report[k] for k in ("v", "t", "home", "time")})),
        ("command", "no challenge (fresh by the clock alone)", without(cmd, "challenge")),
        ("command", "arguments of each JSON type allowed: string, integer, boolean",
         body(cmd, args={"lock": "front-door", "n": -9007199254740992, "b": False})),
    ]
    return refused, [{"kind": k, "case": c, "body_utf8": b} for k, c, b in accepted]


def build() -> dict:
    messages = _messages()
    refused, accepted = _refused(messages)
    return {
        "format": "trygg-message-vectors-v1",
        "warning": "THROWAWAY TEST KEYS, public on purpose. Never enrol or deploy them.",
        "spec": "docs/protocol.md §6 (bodies, strict decoding, refusal codes), §13.2, §14",
        "generator": "tests/vectors/make_message_vectors.py (HPKE sealing is randomized: envelopes recorded once)",
        "key_derivation": "first 32 bytes of SHA-512(\"trygg test vector v1: \" + label), as in envelope_v1.json",
        "keys": _keys(),
        "home": HOME,
        "kinds": {"event": "EventMessage", "ack": "AckMessage", "status": "StatusMessage",
                  "fleet_report": "FleetReport", "command": "CommandMessage", "lookin": "LookinMessage",
                  "lookin_plan": "LookinPlan (the body of an event of kind lookin_plan, read as its own JSON)"},
        "messages": messages,
        "refused": refused,
        "accepted": accepted,
    }


def main(argv: list[str] | None = None) -> int:
    return base.write_vectors(__doc__.splitlines()[0], OUT, build, argv)


if __name__ == "__main__":
    sys.exit(main())

"""Signed commands against their recorded test vectors (tests/vectors/commands_v1.json, docs/protocol.md §13).

The vectors were produced once by tests/vectors/make_command_vectors.py, with the verdicts
written down from the spec. These tests prove that the recorded bytes are the canonical
encoding, that the envelopes open with the device key and verify with the staff key, and
that the real command handler (agent.commands.Commands over a real trust.db, with an
injected clock and challenge source, a recording lock, and for look-ins the real grant and
look-in with the synthetic camera in this process and a stand-in link) reaches every recorded
verdict and code, reports and audits it as specified, and moves the lock only when the verdict
is done.
"""

import functools
import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from agent.actions import build_actions
from agent.audit import GENESIS, AuditLog
from agent.commands import Commands
from agent.config import DeviceConfig
from agent.freshness import Freshness
from agent.grant import Grant
from agent.lookin import LookIn
from base.keys import Identity, PublicIdentity, load_public, parse_public
from agent.policy import Policy
from protocol import envelope, messages, topics
from protocol.envelope import open_sealed, sign
from protocol.ids import is_valid_id
from protocol.kem import KemPrivate
from protocol.refusals import command_codes
from tests.support import vectorkeys
from agent.staff import StaffRegistry
from agent.trustdb import TrustDB
from drivers.capture import pictures
from tests.support.fakes import FakeClock, RecordingLock

VECTOR_DIR = Path(__file__).parent / "vectors"
VECTORS = json.loads((VECTOR_DIR / "commands_v1.json").read_text(encoding="utf-8"))
BASE = json.loads((VECTOR_DIR / "envelope_v1.json").read_text(encoding="utf-8"))
KEYS = VECTORS["keys"]
HOME = VECTORS["home"]
STAFF = VECTORS["staff"]
ALL_MESSAGES = {"command": VECTORS["command"], **VECTORS["messages"]}


def _h(text: str) -> bytes:
    return bytes.fromhex(text)


ed_private = functools.partial(vectorkeys.ed_private, KEYS)  # "device.sign" -> its private key
ed_public = functools.partial(vectorkeys.ed_public, KEYS)


def device_kem() -> KemPrivate:
    entry = KEYS["device"]["kem_x25519"]
    return KemPrivate(entry["suite"], _h(entry["private_hex"]))


def staff_kem() -> KemPrivate:
    entry = KEYS["staff"]["kem_x25519"]
    return KemPrivate(entry["suite"], _h(entry["private_hex"]))


def lookup_for(*names: str):
    known = {envelope.signer_kid(ed_public(n)): ed_public(n) for n in names}
    return known.get


# -- keys -------------------------------------------------------------------------------------
def test_device_keys_are_those_of_the_envelope_vectors():
    assert KEYS["device"]["sign"]["private_hex"] == BASE["keys"]["device"]["sign"]["private_hex"]
    assert KEYS["device"]["kem_x25519"]["private_hex"] == BASE["keys"]["device"]["kem_x25519"]["private_hex"]
    assert HOME == BASE["home"]


@pytest.mark.parametrize("who", ["staff", "unenrolled"])
def test_staff_keys_derive_from_their_labels(who):
    for which, entry in KEYS[who].items():
        seed = hashlib.sha512(b"trygg test vector v1: " + entry["label"].encode()).digest()[:32]
        assert _h(entry["private_hex"]) == seed
        assert _h(entry["kid_hex"]) == hashlib.sha256(_h(entry["public_hex"])).digest()[:8]
        if which == "sign":
            assert ed_private(f"{who}.sign").public_key().public_bytes_raw() == _h(entry["public_hex"])
        else:
            assert KemPrivate(entry["suite"], seed).public.raw == _h(entry["public_hex"])
    assert KEYS["staff"]["sign"]["label"] == "staff"


def test_staff_public_key_file_matches_the_staff_keys():
    public = parse_public(STAFF["public_key_file"], "vector")
    assert public.name == STAFF["name"]
    assert public.sign.public_bytes_raw() == _h(KEYS["staff"]["sign"]["public_hex"])
    assert envelope.signer_kid(public.sign).hex() == STAFF["kid_hex"] == KEYS["staff"]["sign"]["kid_hex"]


# -- the command: canonical body, signature, envelope ------------------------------------------
def test_command_body_is_the_canonical_encoding_of_the_model():
    vector = VECTORS["command"]
    body = _h(vector["body_hex"])
    assert body == vector["body_utf8"].encode("utf-8")
    fields = vector["fields"]
    model = messages.CommandMessage(
        id=fields["id"], home=fields["home"], action=fields["action"], args=fields["args"],
        issued=datetime.fromisoformat(fields["issued"]), expires=datetime.fromisoformat(fields["expires"]),
        challenge=fields["challenge"])
    assert messages.encode(model) == body
    decoded = messages.decode(body, messages.CommandMessage)
    assert decoded == model and messages.encode(decoded) == body
    assert (decoded.home, decoded.action, decoded.args) == (HOME, "unlock", {"lock": "front-door"})
    assert decoded.challenge == VECTORS["challenges"]["current"]
    assert is_valid_id(decoded.id)
    assert int(decoded.id.replace("-", "")[:12], 16) == round(decoded.issued.timestamp() * 1000)
    assert (decoded.expires - decoded.issued).total_seconds() == 60
    assert vector["topic"] == topics.command(HOME)
    assert topics.parse(vector["topic"]) == topics.Topic(HOME, "cmd")


@pytest.mark.parametrize("name", sorted(ALL_MESSAGES))
def test_signed_message_is_reproduced_byte_for_byte(name):
    vector = ALL_MESSAGES[name]
    body, topic = _h(vector["body_hex"]), vector["topic"]
    assert _h(vector["signed_input_hex"]) == b"trygg/v1 sign\x00" + topic.encode() + b"\x00" + body
    signed = sign(body, topic, ed_private(vector["signer"]))
    if name == "bad_signature":
        assert _h(vector["signed_hex"]) == signed[:8] + bytes([signed[8] ^ 1]) + signed[9:]
    else:
        assert signed.hex() == vector["signed_hex"]


@pytest.mark.parametrize("name", sorted(ALL_MESSAGES))
def test_envelope_layout_and_info(name):
    vector = ALL_MESSAGES[name]
    data = _h(vector["envelope_hex"])
    kem = device_kem()
    header = data[:10]
    assert header.hex() == vector["header_hex"] and header == bytes([2, 1]) + kem.public.kid
    assert _h(vector["info_hex"]) == b"trygg/v1 seal\x00" + vector["topic"].encode() + b"\x00" + header
    # padded (§4.5): 4-byte length, the signed message, zeros; the whole envelope is one of the sizes
    assert len(data) == vector["envelope_len"] == 10 + 32 + vector["plaintext_len"] + 16
    assert vector["plaintext_len"] == 4 + len(_h(vector["signed_hex"])) + vector["padding_len"]
    assert vector["envelope_len"] in (1024, 8192)  # the smallest size; the largest command the device takes


def test_command_envelope_opens_with_the_device_key_and_verifies_with_the_staff_key():
    vector = VECTORS["command"]
    data = _h(vector["envelope_hex"])
    opened = open_sealed(data, vector["topic"], [device_kem()], lookup_for("staff.sign"))
    assert opened.body == _h(vector["body_hex"])
    assert opened.signer_kid.hex() == STAFF["kid_hex"]
    assert envelope.verify(_h(vector["signed_hex"]), vector["topic"], lookup_for("staff.sign")).body == opened.body
    with pytest.raises(ValueError, match="signed by an unknown key"):
        open_sealed(data, vector["topic"], [device_kem()], lookup_for("device.sign", "unenrolled.sign"))


# -- the real command handler, one variant at a time --------------------------------------------
def challenge_source(values: list[str]):
    """What Freshness draws challenges from: the given values in turn, the last one repeating."""
    calls = iter(values)
    last = [values[0]]

    def token() -> str:
        last[0] = next(calls, last[0])
        return last[0]

    return token


WIRING = {"relay": {"pin": 17}, "bolt": {"pin": 27}, "door": {"pin": 22}}  # not part of the protocol vectors


def device_config(tmp_path: Path, lookin: dict | None = None) -> DeviceConfig:
    locks = {name: {**rules, **WIRING} for name, rules in VECTORS["device_config"]["locks"].items()}
    data = {**VECTORS["device_config"], "locks": locks,
            "broker": {"host": "broker.invalid", "ca": tmp_path / "ca", "cert": tmp_path / "c", "key": tmp_path / "k"},
            "trust": {"path": tmp_path / "trust.db"}}
    if lookin is not None:
        data["lookin"] = lookin
    return DeviceConfig.model_validate(data)


class Link:
    """The uplink as a look-in sees it: its state, and what send_now() would publish."""

    def __init__(self, state: str) -> None:
        self.link, self.sent = state, []

    def send_now(self, topic: str, payload: bytes, timeout: float) -> str | None:
        self.sent.append((topic, payload))
        return None


class Device:
    """The command side of a daemon: trust.db, staff, freshness, policy, audit, one recording lock,
    and with a camera the grant and the look-in (synthetic camera, in this process)."""

    def __init__(self, cfg: DeviceConfig, clock: FakeClock, spec: dict, lock: RecordingLock) -> None:
        self.db = TrustDB(cfg.trust.path)
        self.audit = AuditLog(self.db, clock)
        self.staff = StaffRegistry(self.db, self.audit, cfg.roles)
        self.freshness = Freshness(self.db, clock, cfg.commands, token=challenge_source(spec["challenges"]))
        self.policy = Policy(cfg, clock)
        self.reported: list = []
        self.link = Link(spec["link"])
        identity = Identity(HOME, ed_private("device.sign"), device_kem())
        look = change_grant = None
        if spec["lookin"] is not None:
            self.grant = Grant(cfg.lookin, cfg.home.timezone, clock, self.db, cfg.roles)
            look = LookIn(HOME, identity, self.grant, self.link, self.reported.append, clock, None, capture=pictures)

            def change_grant(args: dict, by: str) -> dict:
                return self.grant.plan(self.grant.change(args, by, self.audit))
        actions = build_actions({"front-door": lock}, status=lambda: {}, switch_center_key=lambda kid: kid,
                                lookin=look, change_grant=change_grant)
        self.commands = Commands(HOME, identity, self.staff, self.freshness, self.policy, self.audit, actions,
                                 self.reported.append, cfg.commands, clock)

    def use_lookins(self, count: int) -> None:
        for _ in range(count):
            with self.db.write() as conn:
                self.grant.count(conn)

    def close(self) -> None:
        self.db.close()


def payload_of(variant: dict) -> bytes:
    data = bytearray(_h(ALL_MESSAGES[variant["payload"]]["envelope_hex"]))
    if variant.get("op") == "flip":
        data[variant["offset"]] ^= variant["mask"]
    elif variant.get("op") == "append":
        data += bytes(variant["append_zeros"])
    else:
        assert "op" not in variant, variant
    return bytes(data)


def run_variant(variant: dict, tmp_path: Path):
    """Deliver the variant's payload as often as it says; return the device, the lock and the verdicts."""
    spec = variant["device"]
    cfg = device_config(tmp_path, spec["lookin"])
    arrival = datetime.fromisoformat(spec["time"].replace("Z", "+00:00")).timestamp()
    clock = FakeClock(datetime.fromtimestamp(arrival - spec["arrives_at"], tz=timezone.utc), synced=spec["synced"])
    lock = RecordingLock()
    device = Device(cfg, clock, spec, lock)
    start = clock.mono
    staff_key = parse_public(STAFF["public_key_file"], "vector staff key")
    device.staff.add(STAFF["name"], staff_key, variant["staff"]["role"])
    if variant["staff"]["revoked"]:
        device.staff.remove(STAFF["name"])
    for at in spec["ticks_at"]:
        clock.advance(start + at - clock.mono)
        device.freshness.tick()
    clock.advance(start + spec["arrives_at"] - clock.mono)
    assert clock.time() == arrival
    if spec["alarm_open"]:
        device.policy.note_alarm()
    if spec["lookins_used"]:
        device.use_lookins(spec["lookins_used"])
    payload = payload_of(variant)
    verdicts = []
    for expect in variant["expect"]:
        if expect.get("restart_first"):
            device.close()
            device = Device(cfg, clock, spec, lock)
        before_reports, before_audit, before_sent = len(device.reported), len(device.audit.entries()), len(device.link.sent)
        verdict = device.commands.handle(variant["deliver_on"], payload)
        verdicts.append((verdict, device.reported[before_reports:], device.audit.entries()[before_audit:],
                         device.link.sent[before_sent:]))
    return device, lock, verdicts


@pytest.mark.parametrize("variant", VECTORS["variants"], ids=[v["name"] for v in VECTORS["variants"]])
def test_variant_gets_its_recorded_verdict(variant, tmp_path):
    device, lock, verdicts = run_variant(variant, tmp_path)
    try:
        for expect, (verdict, reports, audited, sent) in zip(variant["expect"], verdicts, strict=True):
            assert (verdict.outcome, verdict.code) == (expect["outcome"], expect["code"]), verdict.reason
            assert expect["reason_contains"] in verdict.reason  # this implementation's wording (informative)
            if expect["outcome"] == "done":
                assert verdict.reason == ""
            # every delivery is audited, with the verdict, code and reason
            assert [e.kind for e in audited] == expect["audit"]
            command = audited[-1]
            assert (command.detail["outcome"], command.detail["code"]) == (expect["outcome"], expect["code"])
            assert command.detail["reason"] == verdict.reason
            assert command.detail["bytes"] == len(payload_of(variant))
            # a signed answer goes back only when staff verifiably signed a well-formed command
            results = [e for e in reports if e.kind == "command_result"]
            if expect["result_event"]:
                assert len(results) == 1
                event = results[0]
                assert event.cls == "event"
                assert (event.body["outcome"], event.body["code"]) == (expect["outcome"], expect["code"])
                assert event.body["reason"] == verdict.reason
                assert event.body["staff"] == STAFF["name"] and event.body["role"] == variant["staff"]["role"]
            else:
                assert results == []
            # a look-in's picture: published once, sealed to the member's own key, answering this command
            assert len(sent) == int(expect["picture"])
            for topic, picture in sent:
                assert topic == topics.lookin(HOME)
                opened = open_sealed(picture, topic, [staff_kem()], lookup_for("device.sign"))
                body = messages.decode(opened.body, messages.LookinMessage)
                assert (body.home, body.command, body.staff) == (HOME, verdict.command.id, STAFF["name"])
        done = sum(1 for v, *_ in verdicts if v.outcome == "done" and v.command.action == "unlock")
        assert lock.calls == ["unlock"] * done
        assert device.audit.verify().ok
    finally:
        device.close()


def test_variants_cover_the_listed_cases():
    names = {v["name"] for v in VECTORS["variants"]}
    outcomes = {e["outcome"] for v in VECTORS["variants"] for e in v["expect"]}
    assert outcomes == {"done", "refused", "failed"}
    assert len(names) == len(VECTORS["variants"]) >= 20
    assert {v["payload"] for v in VECTORS["variants"]} == set(ALL_MESSAGES)
    codes = {e["code"] for v in VECTORS["variants"] for e in v["expect"]}
    assert codes <= command_codes()  # every recorded code is one the protocol lists
    assert {c.split(".")[0] for c in codes} >= {"", "oversized", "wrong_topic", "envelope", "malformed", "wrong_home",
                                                "replayed", "revoked", "not_fresh", "not_allowed", "unsupported",
                                                "lookin", "lookin_grant", "help_coming"}


# -- the answer and the audit trail ------------------------------------------------------------
def _variant(name: str) -> dict:
    return next(v for v in VECTORS["variants"] if v["name"] == name)


@pytest.mark.parametrize("name", sorted(VECTORS["command_result"]["examples"]))
def test_command_result_body_is_what_the_device_reports(name, tmp_path):
    device, _, verdicts = run_variant(_variant(name), tmp_path)
    try:
        (_, reports, _, _), = verdicts
        assert reports[0].body == VECTORS["command_result"]["examples"][name]
    finally:
        device.close()


def test_command_result_event_example_is_canonical_and_signed_by_the_device():
    example = VECTORS["command_result"]["event"]
    body = _h(example["body_hex"])
    assert body == example["body_utf8"].encode()
    event = messages.decode(body, messages.EventMessage)
    assert messages.encode(event) == body
    assert (event.cls, event.kind, event.home) == ("event", "command_result", HOME)
    assert event.body == VECTORS["command_result"]["examples"]["valid"]
    assert sign(body, example["topic"], ed_private("device.sign")).hex() == example["signed_hex"]


def test_audit_trail_after_a_valid_command_matches_the_recorded_chain(tmp_path):
    device, _, _ = run_variant(_variant("valid"), tmp_path)
    try:
        recorded = VECTORS["audit"]["entries"]
        assert [e.to_json() for e in device.audit.entries()] == [r["entry"] for r in recorded]
        prev = GENESIS
        for r in recorded:  # the hash as docs/protocol.md describes it, computed here independently
            e = r["entry"]
            detail_json = json.dumps(e["detail"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            assert detail_json == r["detail_json"]
            hashed = f"{prev}\n" + json.dumps([e["seq"], repr(float(e["time"])), e["synced"], e["kind"], detail_json],
                                               separators=(",", ":"))
            assert hashed == r["hash_input_utf8"]
            assert e["prev"] == prev and hashlib.sha256(hashed.encode()).hexdigest() == e["hash"]
            prev = e["hash"]
    finally:
        device.close()


def test_audit_event_body_survives_the_wire_and_still_verifies():
    """The center gets each entry as an `audit` event body; its hash is recomputable from that body."""
    for r in VECTORS["audit"]["entries"]:
        entry = r["entry"]
        example = messages.decode(_h(VECTORS["command_result"]["event"]["body_hex"]), messages.EventMessage)
        event = example.model_copy(update={"kind": "audit", "body": entry})
        body = messages.decode(messages.encode(event), messages.EventMessage).body
        detail_json = json.dumps(body["detail"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        content = json.dumps([body["seq"], repr(float(body["time"])), body["synced"], body["kind"], detail_json],
                             separators=(",", ":"))
        assert hashlib.sha256(f"{body['prev']}\n{content}".encode()).hexdigest() == body["hash"]


def test_public_identity_of_the_staff_key_is_enrollable(tmp_path):
    """The staff public key file in the vectors is what `trygg staff add --key` reads."""
    path = tmp_path / "vector-staff.pub"
    path.write_text(json.dumps(STAFF["public_key_file"]))
    loaded = load_public(path)
    assert isinstance(loaded, PublicIdentity) and loaded.to_json() == STAFF["public_key_file"]

"""Hostile input on trygg/v1/<home>/down/cmd: refused with an audited reason, never acted on.

Drives the real `Commands` (agent/commands.py) in-process with a real trust.db, audit log,
staff registry, freshness and policy, real keys, a fake clock and a lock that records every
call: one test per kind of hostile message, then hypothesis properties for arbitrary bytes,
mutated valid commands and the refusal limiter. The same through the real broker and
`trygg run`: tests/test_hostile_broker.py.

The tests after the limiter properties pin down four bugs these tests found and that are now
fixed (summaries during a sustained flood, dropped messages, answers during a flood, times out
of range).
"""

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agent.actions import build_actions
from agent.audit import AuditLog
from agent.commands import MAX_COMMAND_BYTES, Commands
from agent.config import CommandsConfig, DeviceConfig
from protocol.events import Event
from agent.freshness import Freshness
from base.keys import Identity
from agent.policy import Policy
from protocol import envelope, padding, topics
from protocol.ids import new_id
from protocol.kem import KemPublic, suite
from protocol.messages import CommandMessage, encode
from agent.staff import StaffRegistry
from agent.trustdb import TrustDB
from tests.support.fakes import FakeClock, RecordingLock
from tests.support.lab import wait_for

HOME = "hem-hostile"
TOPIC = topics.command(HOME)
UTC = timezone.utc
T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
SUPPRESSED = "command_refusals_suppressed"
STAFF = {"berit": "nurse", "anna": "night-staff", "tove": "technician", "rut": "nurse"}  # rut gets revoked
PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class Bench:
    """One home's command judging, wired as the daemon wires it, on real files under root."""

    def __init__(self, root, per_min: int = 30, queue: int = 256, kem: str = "x25519") -> None:
        self.clock = FakeClock(T0)
        self.cfg = DeviceConfig.model_validate({
            "home": {"id": HOME},
            "broker": {"host": "127.0.0.1", "ca": "ca.crt", "cert": "c.crt", "key": "c.key"},
            "commands": {"refusals_audited_per_min": per_min, "queue": queue},
        })
        self.db = TrustDB(root / "trust.db")
        self.audit = AuditLog(self.db, self.clock)
        self.staff = StaffRegistry(self.db, self.audit, self.cfg.roles)
        self.keys = {name: Identity.generate(name) for name in STAFF}
        for name, role in STAFF.items():
            self.staff.add(name, self.keys[name].public(), role)
        self.staff.remove("rut")
        self.device = Identity.generate("device", kem)
        self.freshness = Freshness(self.db, self.clock, self.cfg.commands)
        self.policy = Policy(self.cfg, self.clock)
        self.lock = RecordingLock()
        self.reports: list[Event] = []
        self.commands = self.new_commands(self.cfg.commands)

    def new_commands(self, cfg: CommandsConfig) -> Commands:
        actions = build_actions({"front-door": self.lock}, status=lambda: {"home": HOME},
                                switch_center_key=lambda kid: kid)
        return Commands(HOME, self.device, self.staff, self.freshness, self.policy, self.audit, actions,
                        self.reports.append, cfg, self.clock)

    def command(self, **fields) -> CommandMessage:
        """A command that passes everything when berit (nurse) signs it, unless fields say otherwise."""
        now = self.clock.now()
        values = {"id": new_id(int(now.timestamp() * 1000)), "home": HOME, "action": "unlock",
                  "args": {"lock": "front-door"}, "issued": now, "expires": now + timedelta(seconds=60)}
        return CommandMessage(**{**values, **fields})

    def seal(self, cmd: CommandMessage | bytes, signer: str | ed25519.Ed25519PrivateKey = "berit",
             topic: str = TOPIC, recipient: KemPublic | None = None) -> bytes:
        body = cmd if isinstance(cmd, bytes) else encode(cmd)
        key = self.keys[signer].sign if isinstance(signer, str) else signer
        return envelope.seal(body, topic, key, recipient or self.device.kem.public)

    def handle(self, payload: bytes, topic: str = TOPIC):
        return self.commands.handle(topic, payload)

    def audited(self, kind: str = "command") -> list[dict]:
        return [e.detail for e in self.audit.entries() if e.kind == kind]

    def header(self) -> bytes:
        """The first 10 bytes of any envelope sealed to this device (public knowledge)."""
        kem = self.device.kem.public
        return envelope.HEADER.pack(envelope.VERSION, kem.suite_id, kem.kid)


def seal_signed(signed: bytes, topic: str, recipient: KemPublic) -> bytes:
    """Seal already-signed bytes exactly as envelope.seal does after signing: what anyone holding
    the device's public key can do with a signature they forged or altered."""
    header = envelope.HEADER.pack(envelope.VERSION, recipient.suite_id, recipient.kid)
    info = b"trygg/v1 seal\x00" + topic.encode() + b"\x00" + header
    return header + suite(recipient.suite_id).encrypt(padding.pad(signed, recipient.suite_id, topic),
                                                      recipient.hpke_key, info=info)


def flip(data: bytes, offset: int, bit: int = 0) -> bytes:
    out = bytearray(data)
    out[offset % len(out)] ^= 1 << bit
    return bytes(out)


@pytest.fixture
def bench(tmp_path):
    b = Bench(tmp_path)
    yield b
    b.db.close()


@dataclass
class Case:
    payload: bytes
    reason: str  # the audited reason must contain this
    cmd: CommandMessage | None = None  # set when the message is verifiably signed by enrolled staff
    staff: str | None = None
    topic: str = TOPIC
    via_submit: bool = False  # through Commands.submit and its thread, as the uplink hands it over
    acted_before: int = 0  # lock calls made while setting the case up (the original of a replay)
    answered: bool = True  # staff-signed commands get a signed result; a replay does not (its original did)


def _signed(b: Bench, cmd: CommandMessage, reason: str, staff: str = "berit") -> Case:
    return Case(b.seal(cmd, signer=staff), reason, cmd, staff)


def _bad_signature(b: Bench) -> Case:
    signed = envelope.sign(encode(b.command()), TOPIC, b.keys["berit"].sign)
    return Case(seal_signed(flip(signed, 8 + 17), TOPIC, b.device.kem.public), "envelope: bad signature")


def _body_swapped_under_signature(b: Bench) -> Case:
    signed = envelope.sign(encode(b.command(action="lock")), TOPIC, b.keys["anna"].sign)
    forged = signed[:72] + encode(b.command())  # anna's signature over "lock", body now "unlock"
    return Case(seal_signed(forged, TOPIC, b.device.kem.public), "envelope: bad signature")


def _replayed(b: Bench) -> Case:
    cmd = b.command()
    payload = b.seal(cmd)
    first = b.handle(payload)
    assert first.outcome == "done" and b.lock.calls == ["unlock"]
    return Case(payload, "replayed: this command id was already received", cmd, "berit", acted_before=1,
                answered=False)


def _oversized(b: Bench) -> Case:
    payload = b.seal(b.command()) + bytes(MAX_COMMAND_BYTES)  # a valid command, padded past the limit
    return Case(payload, f"oversized: {len(payload)} bytes (limit {MAX_COMMAND_BYTES})", via_submit=True)


def _unsynced(b: Bench) -> Case:
    b.clock.is_synced = False
    return _signed(b, b.command(), "not fresh: device clock not synchronized")


CASES = {
    "garbage bytes": lambda b: Case(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "envelope: unsupported envelope version 71"),
    "empty payload": lambda b: Case(b"", "envelope: envelope too short"),
    "truncated to the header": lambda b: Case(b.seal(b.command())[:10], "envelope: envelope too short"),
    "truncated envelope": lambda b: Case(b.seal(b.command())[:-40], "is not a padded size"),
    "sealed to the wrong device key": lambda b: Case(
        b.seal(b.command(), recipient=Identity.generate("elsewhere").kem.public),
        "envelope: sealed to a key we do not hold"),
    "signed by an unknown key": lambda b: Case(
        b.seal(b.command(), signer=Identity.generate("mallory").sign), "envelope: signed by an unknown key"),
    "altered signature byte": _bad_signature,
    "body swapped under a valid signature": _body_swapped_under_signature,
    "altered ciphertext byte": lambda b: Case(flip(b.seal(b.command()), -20, 3), "envelope: envelope does not open"),
    "altered header byte": lambda b: Case(flip(b.seal(b.command()), 5), "envelope: sealed to a key we do not hold"),
    "sealed for another topic": lambda b: Case(
        b.seal(b.command(), topic=topics.command("hem-other")), "envelope: envelope does not open"),
    "published on another topic": lambda b: Case(
        b.seal(b.command(home="hem-other"), topic=topics.command("hem-other")),
        "wrong topic: 'trygg/v1/hem-other/down/cmd'", topic=topics.command("hem-other")),
    "published on the ack topic": lambda b: Case(b.seal(b.command(), topic=topics.ack(HOME)), "wrong topic",
                                                 topic=topics.ack(HOME)),
    "wrong home in the body": lambda b: _signed(b, b.command(home="hem-other"), "command for home 'hem-other'"),
    "malformed body, validly signed": lambda b: Case(b.seal(b'{"v":1,"t":"command"'), "malformed command:"),
    "expired": lambda b: _signed(b, b.command(issued=T0 - timedelta(seconds=600), expires=T0 - timedelta(seconds=300)),
                                 "not fresh: expired 300 s ago"),
    "issued in the future": lambda b: _signed(
        b, b.command(issued=T0 + timedelta(seconds=600), expires=T0 + timedelta(seconds=660)),
        "not fresh: issued 600 s in the future"),
    "lifetime too long": lambda b: _signed(b, b.command(expires=T0 + timedelta(hours=1)), "not fresh: lifetime 3600 s"),
    "expires before issued": lambda b: _signed(b, b.command(expires=T0 - timedelta(seconds=1)),
                                               "not fresh: expires before it was issued"),
    "unsynchronized clock, no challenge": _unsynced,
    "wrong challenge": lambda b: _signed(b, b.command(challenge="0" * 32), "not fresh: stale or wrong challenge"),
    "replayed id": _replayed,
    "revoked staff": lambda b: _signed(b, b.command(), "staff member rut is revoked", "rut"),
    "role not allowed": lambda b: _signed(
        b, b.command(), "not allowed: role technician may not give the command 'unlock'", "tove"),
    "lock rule refuses (night staff, no open alarm)": lambda b: _signed(
        b, b.command(), "not allowed: role night-staff may unlock front-door only while an alarm is open", "anna"),
    "unknown lock": lambda b: _signed(
        b, b.command(args={"lock": "back-door"}), "not allowed: no lock named 'back-door'"),
    "oversized payload": _oversized,
    "unknown action": lambda b: _signed(
        b, b.command(action="explode", args={}), "not allowed: unknown action 'explode'"),
    "unknown argument": lambda b: _signed(b, b.command(args={"lock": "front-door", "force": True}),
                                          "not allowed: unknown argument(s) for unlock: force"),
}


def _judge_through_the_queue(b: Bench, case: Case) -> None:
    """As the uplink does it: submit() from another thread, judged on the command thread."""
    b.commands.start()
    try:
        b.commands.submit(case.topic, case.payload)
        wait_for(lambda: b.commands.counts["refused"] + b.commands.counts["done"] == 1, 5, "the command thread")
    finally:
        b.commands.stop()


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_command_is_refused_with_its_reason_audited_and_never_acts(bench, name):
    case = CASES[name](bench)
    audited_before, reports_before = len(bench.audited()), len(bench.reports)
    if case.via_submit:
        _judge_through_the_queue(bench, case)
    else:
        verdict = bench.handle(case.payload, case.topic)
        assert verdict.outcome == "refused" and case.reason in verdict.reason, verdict
    assert len(bench.lock.calls) == case.acted_before, "the lock moved"
    assert bench.commands.counts["refused"] == 1 and bench.commands.counts["done"] == case.acted_before
    entries = bench.audited()[audited_before:]
    assert len(entries) == 1 and entries[0]["outcome"] == "refused", entries
    assert case.reason in entries[0]["reason"]
    assert entries[0]["bytes"] == len(case.payload)
    reports = bench.reports[reports_before:]
    if case.cmd is None or not case.answered:  # not verifiably from enrolled staff, or a replay: no answer
        assert reports == []
    else:
        assert [r.kind for r in reports] == ["command_result"]
        body = reports[0].body
        assert body["command"] == case.cmd.id and body["outcome"] == "refused" and case.reason in body["reason"]
        assert body["staff"] == case.staff and body["role"] == STAFF[case.staff]
        assert entries[0]["staff"] == case.staff and entries[0]["command"] == case.cmd.id
    assert bench.audit.verify().ok


def test_valid_commands_act_so_the_refusals_above_mean_something(bench):
    """The control: the same bench acts on a good command, also one sealed with seal_signed()."""
    verdict = bench.handle(bench.seal(bench.command()))
    assert verdict.outcome == "done" and bench.lock.calls == ["unlock"]
    signed = envelope.sign(encode(bench.command(action="lock")), TOPIC, bench.keys["berit"].sign)
    assert bench.handle(seal_signed(signed, TOPIC, bench.device.kem.public)).outcome == "done"
    bench.policy.note_alarm()  # night staff may come in while an alarm is open
    assert bench.handle(bench.seal(bench.command(), signer="anna")).outcome == "done"
    assert bench.lock.calls == ["unlock", "lock", "unlock"]
    assert [r.body["outcome"] for r in bench.reports] == ["done"] * 3
    assert [e["outcome"] for e in bench.audited()] == ["done"] * 3


# -- properties ---------------------------------------------------------------------------------
@settings(PROPERTY, max_examples=300)
@given(payload=st.binary(max_size=700), with_header=st.booleans(),
       topic=st.one_of(st.just(TOPIC), st.text(max_size=60)))
@example(payload=b"", with_header=True, topic=TOPIC)
@example(payload=bytes(64), with_header=True, topic=TOPIC)
def test_arbitrary_bytes_never_act_and_are_always_refused(bench, payload, with_header, topic):
    if with_header:  # past the header checks, into HPKE
        payload = bench.header() + payload
    verdict = bench.handle(payload, topic)
    assert verdict.outcome == "refused" and verdict.reason
    assert bench.lock.calls == [] and bench.reports == [] and bench.commands.counts["done"] == 0


@pytest.fixture(params=["x25519", "mlkem768-x25519"])
def kem_bench(request, tmp_path):
    b = Bench(tmp_path, kem=request.param)
    yield b
    b.db.close()


MUTATIONS = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 1 << 20), st.integers(0, 7)),
    st.tuples(st.just("truncate"), st.integers(0, 1 << 20)),
    st.tuples(st.just("append"), st.binary(max_size=64)),
)


def mutate(data: bytes, mutation: tuple) -> bytes:
    if mutation[0] == "flip":
        return flip(data, mutation[1] % len(data), mutation[2])
    if mutation[0] == "truncate":
        return data[: mutation[1] % (len(data) + 1)]
    return data + mutation[1]


@settings(PROPERTY, max_examples=250)
@given(mutation=MUTATIONS)
@example(mutation=("append", b""))  # identical: must act, or this test could not fail
@example(mutation=("truncate", 0))
@example(mutation=("flip", 41, 7))  # top bit of the X25519 enc's last byte, which X25519 itself ignores
def test_mutated_valid_command_never_acts_unless_byte_identical(kem_bench, mutation):
    b = kem_bench
    original = b.seal(b.command())  # a fresh id each time, so only the mutation can make it fail
    mutated = mutate(original, mutation)
    calls = len(b.lock.calls)
    verdict = b.handle(mutated)
    if mutated == original:
        assert verdict.outcome == "done" and len(b.lock.calls) == calls + 1
    else:
        assert verdict.outcome == "refused" and len(b.lock.calls) == calls, verdict


REFUSALS = {
    "short": (lambda b: b"\x01", "envelope"),
    "version": (lambda b: b"\x07" * 40, "envelope"),
    "unknown signer": (lambda b: b.seal(b.command(), signer=Identity.generate("mallory").sign), "envelope"),
    "topic": (lambda b: b.seal(b.command()), "wrong topic"),
    "role": (lambda b: b.seal(b.command(), signer="tove"), "not allowed"),
}


@settings(PROPERTY, max_examples=60)
@given(per_min=st.integers(1, 12), kinds=st.lists(st.sampled_from([*REFUSALS, "valid"]), min_size=1, max_size=60))
def test_refusal_flood_audits_at_most_the_limit_and_one_summary_that_adds_up(bench, per_min, kinds):
    commands = bench.new_commands(CommandsConfig(refusals_audited_per_min=per_min))
    start = len(bench.audit.entries())
    expected = Counter()
    refusals = 0
    for kind in kinds:
        if kind == "valid":
            verdict = commands.handle(TOPIC, bench.seal(bench.command(action="ping", args={})))
            assert verdict.outcome == "done"  # never limited, never counted as a refusal
            continue
        make, key = REFUSALS[kind]
        verdict = commands.handle(topics.ack(HOME) if kind == "topic" else TOPIC, make(bench))
        assert verdict.outcome == "refused" and verdict.reason.split(":")[0] == key
        refusals += 1
        if refusals > per_min:
            expected[key] += 1
    assert commands.limiter.take_summary() is None  # the minute is not over yet
    new = [e.detail for e in bench.audit.entries()[start:]]
    assert sum(1 for d in new if d["outcome"] == "refused") == min(refusals, per_min)
    assert sum(1 for d in new if d["outcome"] == "done") == kinds.count("valid")
    bench.clock.advance(60)
    summary = commands.limiter.take_summary()
    if refusals <= per_min:
        assert summary is None
    else:
        assert summary == {"suppressed": refusals - per_min, "by_reason": dict(expected)}
        assert min(refusals, per_min) + summary["suppressed"] == refusals  # every refusal accounted for once
    assert commands.limiter.take_summary() is None  # and never twice
    assert bench.lock.calls == []


@pytest.fixture
def limited(tmp_path):
    b = Bench(tmp_path, per_min=5)
    yield b
    if b.commands.alive():
        b.commands.stop()
    b.db.close()


def test_refusal_flood_on_the_command_thread_writes_one_summary_after_the_minute(limited):
    b = limited
    b.commands.start()
    flood = [(TOPIC, b"\x01"), (topics.ack(HOME), b.seal(b.command())), (TOPIC, b"\x07" * 40)] * 14  # 42
    for topic, payload in flood:
        b.commands.submit(topic, payload)
    wait_for(lambda: b.commands.counts["refused"] == len(flood), 10, "the flood to be judged")
    assert len([d for d in b.audited() if d["outcome"] == "refused"]) == 5
    assert b.audited(SUPPRESSED) == []
    b.clock.advance(61)
    summaries = wait_for(lambda: b.audited(SUPPRESSED), 5, "the summary entry")
    assert summaries == [{"suppressed": 37, "by_reason": {"envelope": 25, "wrong topic": 12}}]
    assert b.lock.calls == [] and b.reports == []
    assert b.audit.verify().ok


def test_refusal_summary_is_written_when_the_minute_ends_even_while_the_flood_goes_on(limited):
    # Each minute's suppressed refusals become one summary even while the flood goes on, and
    # what is still counted when the daemon stops is written then.
    b = limited
    b.commands.start()
    for _ in range(20):
        b.commands.submit(TOPIC, b"\x01")
    wait_for(lambda: b.commands.counts["refused"] == 20, 10, "minute one's flood to be judged")
    b.clock.advance(61)
    for _ in range(20):  # the flood goes on into the next minute
        b.commands.submit(TOPIC, b"\x01")
    wait_for(lambda: b.commands.counts["refused"] == 40, 10, "minute two's flood to be judged")
    summaries = wait_for(lambda: b.audited(SUPPRESSED), 2.5, "minute one's summary (15 suppressed)")
    assert summaries[0] == {"suppressed": 15, "by_reason": {"envelope": 15}}


def test_dropped_messages_are_accounted_for_in_the_audit_trail(tmp_path):
    # Messages dropped from a full queue are counted into the summary; they never use up the
    # budget of individually audited refusals.
    b = Bench(tmp_path, per_min=5, queue=1)
    try:
        for _ in range(4):  # nothing judges yet: one queued, three dropped
            b.commands.submit(TOPIC, b"\x01")
        assert b.commands.counts["dropped"] == 3
        b.commands.start()
        wait_for(lambda: b.commands.counts["refused"] == 1, 5, "the queued message to be judged")
        b.clock.advance(61)
        accounted = lambda: (len([d for d in b.audited() if "dropped" in d.get("reason", "")])
                             + sum(d["by_reason"].get("dropped", 0) for d in b.audited(SUPPRESSED)))
        wait_for(lambda: accounted() >= 3, 2.5, "the three dropped messages in the audit trail")
        assert [d["outcome"] for d in b.audited()] == ["refused"]  # the judged one was audited itself
    finally:
        b.commands.stop()
        b.db.close()


def test_staff_command_refused_during_a_flood_still_gets_its_signed_answer(tmp_path):
    # However many refusals garbage has used up, a command verifiably signed by enrolled staff
    # still gets its signed answer, so nobody on the broker can turn a refusal into "no answer".
    b = Bench(tmp_path, per_min=5)
    try:
        for _ in range(10):
            assert b.handle(b"\x01").outcome == "refused"
        cmd = b.command()
        verdict = b.handle(b.seal(cmd, signer="anna"))  # night staff, no alarm open: refused
        assert verdict.outcome == "refused" and "only while an alarm" in verdict.reason
        assert b.lock.calls == []
        assert [(r.kind, r.body["command"], r.body["outcome"]) for r in b.reports] == [
            ("command_result", cmd.id, "refused")]
    finally:
        b.db.close()


@pytest.fixture
def unlimited(tmp_path):
    b = Bench(tmp_path, per_min=10_000)  # every refusal audited one by one
    yield b
    b.db.close()


_NAIVE_LIMITS = st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59))
_ZONES = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
_EDGES = st.sampled_from([datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59)])  # where offsets overflow
_TIMES = st.one_of(st.just(T0), st.one_of(_NAIVE_LIMITS, _EDGES).flatmap(
    lambda d: _ZONES.map(lambda z: d.replace(tzinfo=z))))
_FIELDS = {
    "home": st.sampled_from([HOME, "hem-other", "", "HEM", 7]),
    "action": st.sampled_from(["unlock", "lock", "ping", "explode", "Unlock", "", None]),
    "args": st.one_of(st.just({"lock": "front-door"}), st.dictionaries(st.text(max_size=8), st.one_of(
        st.text(max_size=8), st.integers(), st.booleans(), st.none()), max_size=3)),
    "issued": _TIMES, "expires": _TIMES,
    "challenge": st.one_of(st.none(), st.text(max_size=40)),
    "v": st.sampled_from([1, 2, "1"]), "t": st.sampled_from(["command", "event"]),
    "id": st.one_of(st.just(None), st.text(max_size=40)), "extra": st.integers(),
}


def _jsonable(value):
    return value.isoformat() if isinstance(value, datetime) else value


@settings(PROPERTY, max_examples=300)
@given(changes=st.dictionaries(st.sampled_from(list(_FIELDS)), st.none(), max_size=4).flatmap(
    lambda keys: st.fixed_dictionaries({k: _FIELDS[k] for k in keys})))
@example(changes={"issued": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))})
def test_any_body_signed_by_staff_is_judged_and_audited_never_raises(unlimited, changes):
    # Any body signed by enrolled staff is judged and audited; none makes handle() raise
    # (e.g. a time such as 0001-01-01T00:00:00+01:00 that cannot be converted to UTC).
    bench = unlimited
    cmd = bench.command()
    data = {k: _jsonable(v) for k, v in json.loads(encode(cmd)).items()}
    for key, value in changes.items():
        if key == "id" and value is None:
            continue
        data[key] = _jsonable(value)
    body = json.dumps(data).encode()
    audited = len(bench.audited())
    verdict = bench.handle(bench.seal(body))
    assert verdict.outcome in ("done", "refused")
    assert len(bench.audited()) == audited + 1
    if verdict.outcome == "done":
        assert verdict.command.home == HOME and verdict.command.action in ("unlock", "lock", "ping")
    else:
        assert verdict.reason

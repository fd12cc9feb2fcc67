"""The receiving side's small modules, driven directly: opening and verifying an event for its
topic and the center's keys during a rotation (center/opening.py), the enrolled homes and the
presence replay rule (center/homes.py), test traffic per home (center/testlimit.py) and what the
broker's limits are warned of (center/brokerlimits.py).

Real keys (base.keys.Identity), real envelopes (protocol.envelope) and real key files in a
homes directory; time is an injected clock. Written from a mutation run: each test holds a
behaviour a surviving mutant changed (what staff see, what is recorded, what is acknowledged).
"""

import base64
import json
import os
from datetime import UTC, datetime

import pytest

from base.errors import EnvelopeError, KeyFileError, MessageError
from base.keys import Identity, PublicIdentity, seal_at_rest, write_public
from center import brokerlimits
from center import homes as homes_module
from center.brokerlimits import BrokerLimits, dropped_warning, warnings
from center.homes import HomeRegistry
from center.opening import RELOAD_EVERY_S, Opener
from center.testlimit import TESTS_BURST, TestLimit
from protocol import envelope, topics
from protocol.ids import new_id
from protocol.messages import EventMessage, encode
from tests.support.fakes import FakeClock

T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
HOME, OTHER = "hem-1", "hem-2"


# -- helpers ---------------------------------------------------------------------------------------


def enroll(homes_dir, identity: Identity, name: str | None = None) -> None:
    write_public(identity.public(), homes_dir / f"{name or identity.name}.pub", force=True)
    bump(homes_dir)


def bump(homes_dir) -> None:
    """Move the directory's mtime on, as a later change would (mtime granularity is coarse)."""
    st = homes_dir.stat()
    os.utime(homes_dir, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def event(home: str = HOME, cls: str = "alarm", kind: str = "fall", body: dict | None = None) -> EventMessage:
    return EventMessage(id=new_id(), home=home, cls=cls, kind=kind, time=T0, clock_synced=True, body=body or {})


def sealed(message: EventMessage, topic: str, signer: Identity, to: Identity) -> bytes:
    return envelope.seal(encode(message), topic, signer.sign, to.kem.public)


def audit_body(home: str, detail: dict, to: Identity, seq: int = 4, kind: str = "command") -> dict:
    """An `audit` event body as the device forwards it: the detail sealed to a center key."""
    secret = seal_at_rest(to.kem.public, json.dumps(detail).encode(), f"{home}/audit/{seq}/{kind}")
    return {"seq": seq, "kind": kind, "detail": {"outcome": "done"}, "sealed": base64.b64encode(secret).decode()}


class Loader:
    """The center's key files as the Opener re-reads them, with a count of the readings."""

    def __init__(self, keys) -> None:
        self.keys, self.calls, self.fail = list(keys), 0, False

    def __call__(self):
        self.calls += 1
        if self.fail:
            raise KeyFileError("center.key: not readable")
        return list(self.keys)


@pytest.fixture
def desk(tmp_path):
    """A homes directory with two homes enrolled, the center's key and an Opener over them."""
    homes_dir = tmp_path / "homes"
    homes_dir.mkdir()
    home, other, center = Identity.generate(HOME), Identity.generate(OTHER), Identity.generate("center")
    enroll(homes_dir, home)
    enroll(homes_dir, other)
    registry = HomeRegistry(homes_dir)
    clock = FakeClock(T0)
    return {"dir": homes_dir, "home": home, "other": other, "center": center, "homes": registry, "clock": clock,
            "opener": Opener(registry, [center.kem], None, clock)}


# -- opening.py: an event opens only for its own home and class ------------------------------------


def test_an_event_from_its_home_on_its_topic_opens_with_what_the_home_sent(desk):
    topic = topics.up(HOME, "alarm")
    sent = event(body={"room": "badrum"})
    opened = desk["opener"].open_event(sealed(sent, topic, desk["home"], desk["center"]), topic)
    assert (opened.id, opened.home, opened.cls, opened.kind, opened.body) == (sent.id, HOME, "alarm", "fall",
                                                                                {"room": "badrum"})


def test_an_event_signed_by_another_enrolled_home_does_not_open(desk):
    topic = topics.up(HOME, "alarm")
    with pytest.raises(EnvelopeError):
        desk["opener"].open_event(sealed(event(), topic, desk["other"], desk["center"]), topic)


def test_an_event_naming_another_home_is_refused_as_wrong_home_and_another_class_as_wrong_class(desk):
    topic = topics.up(HOME, "alarm")
    with pytest.raises(MessageError) as wrong_home:
        desk["opener"].open_event(sealed(event(home=OTHER), topic, desk["home"], desk["center"]), topic)
    assert wrong_home.value.code == "wrong_home" and OTHER in str(wrong_home.value)
    with pytest.raises(MessageError) as wrong_class:
        desk["opener"].open_event(sealed(event(cls="event", kind="door"), topic, desk["home"], desk["center"]), topic)
    assert wrong_class.value.code == "wrong_class"


def test_an_already_parsed_topic_is_used_as_given(desk):
    topic = topics.up(HOME, "alarm")
    payload = sealed(event(), topic, desk["home"], desk["center"])
    assert desk["opener"].open_event(payload, topic, topics.parse(topic)).home == HOME
    with pytest.raises(MessageError):  # the caller's parsed topic says another class: refused
        desk["opener"].open_event(payload, topic, topics.Topic(HOME, "up", "event"))


# -- opening.py: the center's keys during a rotation -----------------------------------------------


def test_an_event_sealed_to_the_centers_next_key_opens_once_the_key_files_have_it(desk):
    nxt = Identity.generate("center-next")
    loader = Loader([desk["center"].kem, nxt.kem])
    opener = Opener(desk["homes"], [desk["center"].kem], loader, desk["clock"])
    topic = topics.up(HOME, "alarm")
    assert opener.open_event(sealed(event(), topic, desk["home"], nxt), topic).home == HOME
    assert loader.calls == 1
    assert {k.public.kid for k in opener.opening} == {desk["center"].kem.public.kid, nxt.kem.public.kid}
    # the new key is now held: the next one opens without reading the files again
    desk["clock"].advance(RELOAD_EVERY_S + 1)
    assert opener.open_event(sealed(event(), topic, desk["home"], nxt), topic).home == HOME
    assert loader.calls == 1


def test_envelopes_sealed_to_unknown_keys_re_read_the_keys_at_most_every_few_seconds(desk):
    loader = Loader([desk["center"].kem])
    opener = Opener(desk["homes"], [desk["center"].kem], loader, desk["clock"])
    topic = topics.up(HOME, "alarm")
    stranger = Identity.generate("not-the-center")
    for _ in range(5):
        with pytest.raises(EnvelopeError, match="sealed to a key we do not hold"):
            opener.open_event(sealed(event(), topic, desk["home"], stranger), topic)
    assert loader.calls == 1
    desk["clock"].advance(RELOAD_EVERY_S - 0.5)
    assert not opener.reload() and loader.calls == 1
    desk["clock"].advance(0.5)  # exactly the interval: due again
    assert not opener.reload() and loader.calls == 2  # read again, nothing changed


def test_a_key_that_does_not_open_is_not_a_reason_to_re_read_the_keys(desk):
    loader = Loader([desk["center"].kem])
    opener = Opener(desk["homes"], [desk["center"].kem], loader, desk["clock"])
    topic = topics.up(HOME, "alarm")
    with pytest.raises(EnvelopeError):  # signed by the wrong home: nothing a rotation explains
        opener.open_event(sealed(event(), topic, desk["other"], desk["center"]), topic)
    assert loader.calls == 0


def test_key_files_that_cannot_be_read_keep_the_keys_held(desk):
    loader = Loader([])
    loader.fail = True
    opener = Opener(desk["homes"], [desk["center"].kem], loader, desk["clock"])
    assert not opener.reload() and loader.calls == 1
    topic = topics.up(HOME, "alarm")
    assert opener.open_event(sealed(event(), topic, desk["home"], desk["center"]), topic).home == HOME


def test_a_rotation_that_changes_the_keys_says_so_and_one_that_does_not_says_not(desk):
    nxt = Identity.generate("center-next")
    loader = Loader([desk["center"].kem])
    opener = Opener(desk["homes"], [desk["center"].kem], loader, desk["clock"])
    assert not opener.reload() and loader.calls == 1
    desk["clock"].advance(RELOAD_EVERY_S + 1)
    loader.keys = [nxt.kem]
    assert opener.reload() is True
    assert [k.public.kid for k in opener.opening] == [nxt.kem.public.kid]
    assert not Opener(desk["homes"], [desk["center"].kem], None, desk["clock"]).reload()  # no key files to read


# -- opening.py: an audit entry's sealed detail ----------------------------------------------------


def test_an_audit_entry_is_shown_with_its_detail_opened_and_the_sealed_bytes_gone(desk):
    topic = topics.up(HOME, "event")
    body = audit_body(HOME, {"staff": "birgitta", "action": "unlock"}, desk["center"])
    message = event(cls="event", kind="audit", body=body)
    opened = desk["opener"].open_event(sealed(message, topic, desk["home"], desk["center"]), topic)
    assert opened.body["detail"] == {"outcome": "done", "staff": "birgitta", "action": "unlock"}
    assert "sealed" not in opened.body and "unopened" not in opened.body
    as_forwarded = desk["opener"].open_event(sealed(message, topic, desk["home"], desk["center"]), topic,
                                             open_audit=False)
    assert as_forwarded.body == body


def test_only_an_audit_entry_has_a_sealed_field_opened(desk):
    topic = topics.up(HOME, "event")
    body = audit_body(HOME, {"staff": "birgitta"}, desk["center"])
    message = event(cls="event", kind="door", body=body)
    opened = desk["opener"].open_event(sealed(message, topic, desk["home"], desk["center"]), topic)
    assert opened.body == body
    plain = event(cls="event", kind="audit", body={"seq": 1, "kind": "start", "detail": {"a": 1}})
    assert desk["opener"].open_event(sealed(plain, topic, desk["home"], desk["center"]), topic).body == plain.body


def test_an_audit_detail_sealed_to_the_next_key_opens_after_the_keys_are_re_read(desk):
    nxt = Identity.generate("center-next")
    loader = Loader([desk["center"].kem, nxt.kem])
    opener = Opener(desk["homes"], [desk["center"].kem], loader, desk["clock"])
    topic = topics.up(HOME, "event")
    message = event(cls="event", kind="audit", body=audit_body(HOME, {"staff": "annika"}, nxt))
    opened = opener.open_event(sealed(message, topic, desk["home"], desk["center"]), topic)
    assert opened.body["detail"]["staff"] == "annika" and "sealed" not in opened.body
    assert loader.calls == 1


def test_an_audit_detail_that_will_not_open_is_shown_sealed_with_the_reason(desk):
    loader = Loader([desk["center"].kem])
    opener = Opener(desk["homes"], [desk["center"].kem], loader, desk["clock"])
    topic = topics.up(HOME, "event")
    message = event(cls="event", kind="audit", body=audit_body(HOME, {"staff": "annika"}, Identity.generate("x")))
    opened = opener.open_event(sealed(message, topic, desk["home"], desk["center"]), topic)
    assert opened.body["sealed"] is True and opened.body["unopened"]
    assert "staff" not in opened.body.get("detail", {})
    assert loader.calls == 1  # tried the key files once
    # within the re-read interval the entry is still shown, marked, without reading the files
    opened = opener.open_event(sealed(message, topic, desk["home"], desk["center"]), topic)
    assert opened.body["sealed"] is True and loader.calls == 1


# -- homes.py: whose keys we trust -----------------------------------------------------------------


def test_each_home_is_checked_against_its_own_key_only(desk):
    lookup = desk["homes"].signer_for(HOME)
    own = desk["home"].sign.public_key()
    assert lookup(envelope.signer_kid(own)) is not None
    assert lookup(envelope.signer_kid(own)).public_bytes_raw() == own.public_bytes_raw()
    assert lookup(envelope.signer_kid(desk["other"].sign.public_key())) is None
    assert desk["homes"].signer_for("hem-never")(envelope.signer_kid(own)) is None


def test_a_bad_key_file_is_skipped_and_the_other_homes_still_load(tmp_path):
    homes_dir = tmp_path / "homes"
    homes_dir.mkdir()
    good = Identity.generate("hem-good")
    enroll(homes_dir, good)
    (homes_dir / "hem-broken.pub").write_text("{not json")
    bad_name = Identity.generate("x").public()
    write_public(PublicIdentity("Hem_Bad", bad_name.sign, bad_name.kem), homes_dir / "Hem_Bad.pub")
    write_public(Identity.generate("hem-good").public(), homes_dir / "old-hem-good.pub")  # a stray copy
    registry = HomeRegistry(homes_dir)
    assert set(registry.keys) == {"hem-good"}
    assert registry.keys["hem-good"].sign.public_bytes_raw() == good.sign.public_key().public_bytes_raw()


def test_a_home_enrolled_re_keyed_or_removed_while_we_run_is_seen_at_the_next_refresh(desk):
    registry = desk["homes"]
    new = Identity.generate("hem-3")
    enroll(desk["dir"], new)
    assert "hem-3" not in registry.keys
    registry.refresh()
    assert "hem-3" in registry.keys
    rekeyed = Identity.generate(HOME)
    enroll(desk["dir"], rekeyed)
    registry.refresh()
    assert registry.signer_for(HOME)(envelope.signer_kid(rekeyed.sign.public_key())) is not None
    (desk["dir"] / "hem-3.pub").unlink()
    bump(desk["dir"])
    registry.refresh()
    assert "hem-3" not in registry.keys


def test_an_unchanged_homes_directory_is_not_read_again(desk, monkeypatch):
    reads = []
    real = homes_module.load_public
    monkeypatch.setattr(homes_module, "load_public", lambda path: reads.append(path) or real(path))
    desk["homes"].refresh()
    desk["homes"].refresh()
    assert reads == []


def test_a_homes_directory_that_is_not_there_yet_trusts_nobody_until_it_appears(tmp_path):
    homes_dir = tmp_path / "homes"
    registry = HomeRegistry(homes_dir)
    assert registry.keys == {}
    registry.refresh()
    homes_dir.mkdir()
    enroll(homes_dir, Identity.generate("hem-late"))
    registry.refresh()
    assert set(registry.keys) == {"hem-late"}


# -- homes.py: the presence replay rule ------------------------------------------------------------


def test_an_offline_must_be_newer_than_the_last_offline_and_an_online_newer_than_both():
    registry = HomeRegistry.__new__(HomeRegistry)
    registry.presence, registry.marks_changed = {}, set()
    assert registry.accept_status(HOME, "online", 100.0)
    assert not registry.accept_status(HOME, "online", 100.0)  # the same heartbeat again
    assert not registry.accept_status(HOME, "online", 99.0)
    assert registry.accept_status(HOME, "offline", 50.0)  # a last will stamped at session start
    assert not registry.accept_status(HOME, "offline", 50.0)
    assert not registry.accept_status(HOME, "offline", 40.0)
    assert registry.accept_status(HOME, "online", 101.0)
    assert registry.accept_status(HOME, "offline", 200.0)
    assert not registry.accept_status(HOME, "online", 200.0)  # an online as old as the offline: a replay
    assert not registry.accept_status(HOME, "online", 150.0)
    assert registry.accept_status(HOME, "online", 200.5)
    assert registry.take_changed_marks() == {HOME: (200.5, 200.0)}


def test_replay_marks_persist_only_when_a_status_is_accepted_and_survive_a_restart(tmp_path):
    (tmp_path / "homes").mkdir()
    registry = HomeRegistry(tmp_path / "homes", replay_marks={HOME: (300.0, 250.0)})
    assert not registry.accept_status(HOME, "online", 299.0)  # replayed from before the restart
    assert not registry.accept_status(HOME, "offline", 250.0)
    assert registry.take_changed_marks() == {}
    assert registry.accept_status(OTHER, "offline", 10.0)
    assert registry.take_changed_marks() == {OTHER: (0.0, 10.0)}
    assert registry.take_changed_marks() == {}  # taken once


# -- testlimit.py ----------------------------------------------------------------------------------


def test_test_traffic_is_limited_per_home_and_refills():
    limit = TestLimit()
    assert all(limit.allow(HOME, 0.0) for _ in range(TESTS_BURST))
    assert not limit.allow(HOME, 0.0)
    assert limit.allow(OTHER, 0.0)  # another home's tests are its own
    assert not limit.allow(HOME, 5.0)
    assert limit.allow(HOME, 6.5)
    assert limit.rule() == "30 at once, then one every 6 s"


def test_forgetting_full_buckets_keeps_a_home_that_is_still_over_its_limit():
    limit = TestLimit(burst=2, per_s=1.0)
    assert limit.allow(HOME, 0.0) and limit.allow(HOME, 0.0) and limit.allow(OTHER, 0.0)
    limit.forget_full(0.5)
    assert not limit.allow(HOME, 0.5)  # still over: remembered
    limit.forget_full(10.0)
    assert limit._homes == {}  # every bucket refilled: nothing kept


# -- brokerlimits.py -------------------------------------------------------------------------------


class Connack:
    """The MQTT 5 CONNACK properties paho hands over: only the ones the broker sent are there."""

    def __init__(self, **given) -> None:
        for name, value in given.items():
            setattr(self, name, value)


def test_what_the_broker_says_at_connect_is_read_and_what_it_leaves_out_is_mqtts_default():
    assert BrokerLimits.from_connack(None) == BrokerLimits(65535, None, 2, None)
    assert BrokerLimits.from_connack(Connack()) == BrokerLimits(65535, None, 2, None)
    got = BrokerLimits.from_connack(Connack(ReceiveMaximum=20, MaximumPacketSize=268435455, MaximumQoS=1,
                                            SessionExpiryInterval=600))
    assert got == BrokerLimits(receive_maximum=20, maximum_packet_size=268435455, maximum_qos=1, session_expiry_s=600)


def test_the_limits_are_described_to_staff_as_granted():
    assert BrokerLimits().describe() == ("broker limits: Receive Maximum 65535, largest packet no limit, QoS up to 2, "
                                         "session kept as asked; queue limits are not disclosed")
    line = BrokerLimits(20, 1048576, 1, 3600).describe()
    assert "Receive Maximum 20" in line and "largest packet 1048576 B" in line
    assert "QoS up to 1" in line and "session kept 3600 s" in line


def test_qos_1_is_enough_and_only_qos_0_is_warned_of():
    assert warnings(BrokerLimits(100, maximum_qos=1), 10, 60) == []
    assert len(warnings(BrokerLimits(100, maximum_qos=0), 10, 60)) == 1


def test_a_dropped_counter_that_went_back_after_a_broker_restart_is_no_news():
    assert dropped_warning(7, 3, 5) is None
    assert dropped_warning(0, 0, 5) is None
    assert "dropped 4 more" in dropped_warning(0, 4, 5)  # a reading of 0 before: the rise, not "since it started"


def test_the_dropped_counter_is_read_from_mosquittos_sys_topic():
    assert brokerlimits.DROPPED_TOPIC == "$SYS/broker/publish/messages/dropped"




# -- surviving mutants that cannot matter (numbers and lines as tools/mutate.py gives them) ---------
# opening.py:44 `raise` deleted (#15): the same open_sealed, same keys, raises the same EnvelopeError.
# opening.py:62 `raise` deleted (#36): the same open_detail, same keys, raises again: shown unopened.
# opening.py:74, 80 `return False` -> `return None` (#49, #53): callers test `not self.reload()`.
# homes.py:34, 39 class-body `self.keys` / `self._dir_stamp` deleted (#8, #12): reload() sets both.
# homes.py:92, 96 `return False` -> `return None` (#46, #52): the receiver tests `if not accept_status()`.
# (homes.py's dead presence code these runs found, seen/set_state/newly_silent and three Presence
# fields, is deleted: presence is the store's.)
# testlimit.py:12 `__test__ = False` deleted or made True (#3, #4): pytest collection only, not the limit.
# brokerlimits.py:31 frozen=True -> False (#6): built once per CONNACK, replaced, never mutated or hashed.

"""Every check the receiver makes on a message, one test each, so a rebuild cannot drop one silently.

A real Receiver runs on a thread of its own against the session's real Mosquitto (mutual TLS),
with a real SQLite store and a real homes directory; homes are throwaway key pairs enrolled by
writing their public key file, as `trygg center add-home` does. Events are sealed with the
project's own Sealer, presence signed with protocol.presence. A "wire" client holding the center's
broker identity (what a compromised broker or a stolen center certificate can do) publishes
what a home or an attacker would, and reads every acknowledgement the receiver sends, which
the test opens with the home's own key.

A negative ("never acknowledged", "not shown") is never waited for: each bad message is followed
on the same connection by a good one (the broker keeps one publisher's order), and the checks are
made once the good one is shown and acknowledged. The clock is a FakeClock: silence is reached
by moving its monotonic reading, not by sleeping. Found by running tools/mutate.py on
center/receiver.py (issue 13).
"""

import base64
import json
import os
import sqlite3
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
import pytest

from center.config import CenterConfig
from protocol.events import Event
from base.keys import Identity, seal_at_rest, write_public
from protocol.presence import signed_status
from protocol import envelope, topics
from protocol.ids import new_id
from protocol.messages import AckMessage, EventMessage, StatusMessage, decode, encode, iso
from agent.sealer import Sealer
from base import mqttconn
from center.homes import HomeRegistry
from center.receiver import Receiver
from center.roundsdesk import RoundsDesk
from center.service import case_desk
from center.store import EventStore
from tests.support.broker import Broker
from tests.support.fakes import FakeClock
from tests.support.lab import wait_for

NOW = datetime.now(timezone.utc).replace(microsecond=0)


class Sink:
    """What staff would be shown, collected thread-safely (the receiver shows from its own thread)."""

    def __init__(self, fail_presence: bool = False) -> None:
        self.events, self.presences, self.storages, self.rejects, self.links = [], [], [], [], []
        self.fail_presence = fail_presence
        self.lock = threading.Lock()

    def event(self, message, received):
        with self.lock:
            self.events.append(message)

    def presence(self, home, state):
        if self.fail_presence:
            raise BrokenPipeError("console closed")
        with self.lock:
            self.presences.append((home, state))

    def storage(self, home, state, free_bytes):
        with self.lock:
            self.storages.append((home, state, free_bytes))

    def rejected(self, topic, reason):
        with self.lock:
            self.rejects.append((topic, reason))

    def link(self, state, detail):
        with self.lock:
            self.links.append(state)

    def lookin(self, alert):
        pass

    def shown(self, event_id: str) -> int:
        with self.lock:
            return sum(1 for e in self.events if e.id == event_id)

    def rejected_on(self, topic: str) -> list[str]:
        with self.lock:
            return [reason for t, reason in self.rejects if t == topic]


class Wire:
    """A client with the center's broker identity: publishes anything anywhere, reads every ack."""

    def __init__(self, pki, broker) -> None:
        cert, key = pki.client("center")
        self.acks: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"wire-{os.urandom(4).hex()}",
                                  protocol=mqtt.MQTTv5)
        self.client.tls_set(ca_certs=str(pki.ca), certfile=str(cert), keyfile=str(key))
        subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("trygg/v1/+/down/ack", qos=1)
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert subscribed.wait(10), "wire client did not subscribe"

    def _on_message(self, client, userdata, message) -> None:
        with self.lock:
            self.acks.append((message.topic, bytes(message.payload)))

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Home:
    """A home's device key and its way of sealing events, as its daemon does (agent/sealer.py)."""

    def __init__(self, desk: "Desk", name: str) -> None:
        self.name, self.desk = name, desk
        self.key = Identity.generate(name)
        self.sealer = Sealer(name, self.key, desk.key.kem.public, FakeClock(NOW))

    def enroll(self) -> "Home":
        write_public(self.key.public(), self.desk.homes_dir / f"{self.name}.pub", force=True)
        return self

    def seal(self, cls: str = "alarm", kind: str = "fall", body: dict | None = None) -> tuple[EventMessage, str, bytes]:
        message, row = self.sealer.seal(Event(cls, kind, body or {"room": "bedroom"}))
        return message, row.topic, row.payload

    def send(self, cls: str = "alarm", kind: str = "fall", body: dict | None = None) -> EventMessage:
        message, topic, payload = self.seal(cls, kind, body)
        self.desk.wire.publish(topic, payload)
        return message

    def status(self, state: str = "online", at: datetime = NOW, heartbeat_s: int = 60, retain: bool = False,
               signer: Identity | None = None, **extra) -> None:
        payload = signed_status(self.name, state, at, heartbeat_s, (signer or self.key).sign, **extra)
        self.desk.wire.publish(topics.status(self.name), payload, retain=retain)

    def acked(self) -> list[str]:
        """Every id in every ack sent to this home, in order."""
        return [i for ack in self.acks() for i in ack]

    def acks(self) -> list[list[str]]:
        """The ids of each ack sent to this home; each must open with this home's key."""
        out = []
        center = self.desk.key.public().sign
        with self.desk.wire.lock:
            acks = [payload for topic, payload in self.desk.wire.acks if topic == topics.ack(self.name)]
        for payload in acks:
            opened = envelope.open_sealed(payload, topics.ack(self.name), [self.key.kem],
                                          lambda kid: center if kid == envelope.signer_kid(center) else None)
            ack = decode(opened.body, AckMessage)
            assert ack.home == self.name
            out.append(ack.ids)
        return out


class Desk:
    """A center: one Receiver on a thread, its store and homes directory, restartable."""

    def __init__(self, tmp_path: Path, pki, broker) -> None:
        self.dir = tmp_path / "center"
        self.homes_dir = self.dir / "homes"
        self.homes_dir.mkdir(parents=True)
        self.key = Identity.generate("center")
        self.opening = [self.key.kem]  # what the center's key files hold (a rotation adds one)
        cert, key = pki.client("center")
        self.cfg = CenterConfig.model_validate({
            "center": {"name": f"rx-{os.urandom(4).hex()}", "homes_dir": str(self.homes_dir),
                       "store": str(self.dir / "center.db"), "session_expiry_s": 60},
            "broker": {"host": "127.0.0.1", "port": broker.port, "ca": str(pki.ca), "cert": str(cert),
                       "key": str(key)}})
        self.clock = FakeClock(NOW)
        self.pki = pki
        self.wire = Wire(pki, broker)
        self.probe = Home(self, f"probe-{os.urandom(3).hex()}").enroll()
        self.receiver: Receiver | None = None
        self.thread: threading.Thread | None = None

    def home(self, prefix: str = "home", enroll: bool = True) -> Home:
        home = Home(self, f"{prefix}-{os.urandom(3).hex()}")
        return home.enroll() if enroll else home

    def launch(self, sink: Sink | None = None, backoff: mqttconn.Backoff | None = None, lane: str = "all",
               cases: bool = False, rounds: bool = False) -> Sink:
        """Start the receiver's thread, not waiting for it to connect."""
        self.sink = sink or Sink()
        self.probe_class = "alarm" if lane == "alarm" else "telemetry"  # what the lane takes
        self.store = EventStore(self.cfg.center.store)
        self.homes = HomeRegistry(self.homes_dir, self.store.replay_marks())
        self.cases = case_desk(self.cfg, self.store, keys=[self.key]) if cases else None
        self.rounds = RoundsDesk(EventStore(self.cfg.center.store), [self.key], 600.0) if rounds else None
        self.receiver = Receiver(self.cfg, self.key, self.homes, self.store, self.sink, self.clock,
                                 load_opening=lambda: list(self.opening), lane=lane, cases=self.cases,
                                 rounds=self.rounds)
        if backoff is not None:
            self.receiver.backoff = backoff
        self.thread = threading.Thread(target=self.receiver.run, name="receiver-under-test", daemon=True)
        self.thread.start()
        return self.sink

    def start(self, sink: Sink | None = None, backoff: mqttconn.Backoff | None = None, lane: str = "all",
              cases: bool = False, rounds: bool = False) -> Sink:
        self.launch(sink, backoff, lane, cases, rounds)
        assert self.receiver.connected.wait(10), "receiver did not connect"
        # Connected is not yet subscribed (SUBACK comes later): probe until one probe is acknowledged.
        wait_for(self._probed, 10, "the receiver's subscription")
        return self.sink

    def _probed(self) -> bool:
        probe = self.probe.send(self.probe_class, "probe", {})
        try:
            wait_for(lambda: probe.id in self.probe.acked(), 0.5, "a probe's ack")
        except AssertionError:
            return False
        return True

    def settle(self) -> EventMessage:
        """A good event on the wire, shown and acknowledged: everything published before it is handled."""
        probe = self.probe.send(self.probe_class, "probe", {})
        wait_for(lambda: probe.id in self.probe.acked(), 10, "the probe event's ack")
        return probe

    def stop(self) -> None:
        self.receiver.stop()
        self.thread.join(10)
        assert not self.thread.is_alive()
        self.store.close()
        if self.rounds is not None:
            self.rounds.close()

    def rows(self) -> list[tuple]:
        with sqlite3.connect(self.cfg.center.store) as conn:
            return conn.execute("SELECT id, home, class, topic, envelope FROM events").fetchall()

    def close(self) -> None:
        if self.thread is not None and self.thread.is_alive():
            self.stop()
        self.wire.close()
        self.end_session()

    def end_session(self) -> None:
        """Clear our receiver's persistent session at the broker, or it would queue every later
        test's events for nobody (Mosquitto fans each one out to every kept session)."""
        cert, key = self.pki.client("center")
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.cfg.center.name, protocol=mqtt.MQTTv5)
        client.tls_set(ca_certs=str(self.pki.ca), certfile=str(cert), keyfile=str(key))
        connected = threading.Event()
        client.on_connect = lambda c, u, f, rc, p: connected.set()
        client.connect("127.0.0.1", self.cfg.broker.port, clean_start=True)  # session expiry 0: gone at disconnect
        client.loop_start()
        assert connected.wait(10), "could not clear the receiver's session"
        client.disconnect()
        client.loop_stop()


@pytest.fixture
def desk(tmp_path, pki, broker):
    desk = Desk(tmp_path, pki, broker)
    yield desk
    desk.close()


def sealed(home: Home, message: EventMessage, topic: str | None = None, signer: Identity | None = None) -> tuple[str, bytes]:
    topic = topic or topics.up(home.name, message.cls)
    return topic, envelope.seal(encode(message), topic, (signer or home.key).sign, home.desk.key.kem.public)


def alarm(home: str, cls: str = "alarm", **change) -> EventMessage:
    fields = {"id": new_id(int(NOW.timestamp() * 1000)), "home": home, "class": cls, "kind": "fall", "time": NOW,
              "clock_synced": True, "body": {"room": "hall"}}
    return EventMessage.model_validate({**fields, **change})


def rejected_and_not_acknowledged(desk: Desk, home: Home, topic: str, event_id: str | None, reason: str) -> None:
    """After a bad message: the next good event is handled; the bad one was reported, not shown,
    not recorded and not acknowledged."""
    desk.settle()
    reasons = desk.sink.rejected_on(topic)
    assert len(reasons) == 1 and reason in reasons[0], reasons
    if event_id is not None:
        assert desk.sink.shown(event_id) == 0
        assert event_id not in [row[0] for row in desk.rows()]
        assert event_id not in home.acked()


# -- the good path -------------------------------------------------------------------------------


def test_an_alarm_is_shown_recorded_sealed_as_received_and_acknowledged_to_its_home_only(desk):
    sink = desk.start()
    home, other = desk.home(), desk.home()
    message, topic, payload = home.seal("alarm", "fall", {"room": "bedroom", "pressure": 7})
    desk.wire.publish(topic, payload)
    wait_for(lambda: message.id in home.acked(), 10, "the alarm's ack")
    [shown] = [e for e in sink.events if e.id == message.id]
    assert (shown.home, shown.cls, shown.kind, shown.body) == (home.name, "alarm", "fall",
                                                               {"room": "bedroom", "pressure": 7})
    assert (message.id, home.name, "alarm", topic, payload) in desk.rows()  # the envelope as received
    assert home.acked() == [message.id] and other.acked() == []
    assert not [t for t, _ in sink.rejects if t.startswith(f"trygg/v1/{home.name}/")]


def test_a_restarted_receiver_is_not_sent_again_what_it_recorded_or_rejected(desk):
    """The broker's PUBACK is given for every message handled, accepted or rejected for good."""
    desk.start()
    home = desk.home()
    first = home.send()
    bad_topic = topics.up(home.name, "event")
    desk.wire.publish(bad_topic, b"not an envelope")
    desk.settle()
    assert home.acked() == [first.id] and len(desk.sink.rejected_on(bad_topic)) == 1
    desk.stop()
    sink = desk.start()
    assert home.acked() == [first.id]  # not redelivered, so not acknowledged again
    assert sink.rejected_on(bad_topic) == []


# -- checks on an event ---------------------------------------------------------------------------


def test_a_message_on_a_topic_of_unknown_shape_is_rejected_and_not_acknowledged(desk):
    desk.start()
    home = desk.home()
    message = alarm(home.name)
    topic = f"trygg/v1/{home.name}/up/urgent"  # matches the subscription, is no class of ours
    desk.wire.publish(topic, envelope.seal(encode(message), topic, home.key.sign, desk.key.kem.public))
    rejected_and_not_acknowledged(desk, home, topic, message.id, "unknown trygg/v1 topic")


def test_a_message_on_a_channel_the_receiver_does_not_take_is_rejected_and_a_cleared_status_is_no_news(desk):
    """handle() takes events and presence only: a look-in picture or a command reaching it (a
    wider subscription, a misconfigured shared group) is reported, never taken as an event. A
    cleared retained status (empty and retained) is no news; an empty live message is reported.
    Fed straight to handle(): Mosquitto's subscription and retained store never deliver these."""
    home = desk.home()
    sink = Sink()
    store = EventStore(desk.cfg.center.store)
    receiver = Receiver(desk.cfg, desk.key, HomeRegistry(desk.homes_dir), store, sink, desk.clock)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="never-connected", protocol=mqtt.MQTTv5,
                         manual_ack=True)  # never connected: its PUBACKs go nowhere

    def handle(topic: str, payload: bytes, retain: bool = False) -> None:
        message = mqtt.MQTTMessage(mid=1, topic=topic.encode())
        message.payload, message.qos, message.retain = payload, 1, retain
        receiver.handle(client, [message])

    message, topic, payload = home.seal()
    for channel, name in (("lookin", "lookin"), ("down/cmd", "cmd"), ("down/ack", "ack")):
        handle(f"trygg/v1/{home.name}/{channel}", payload)
        assert sink.rejected_on(f"trygg/v1/{home.name}/{channel}") == [f"unexpected channel {name!r}"]
    handle(topics.status(home.name), b"", retain=True)
    assert sink.rejected_on(topics.status(home.name)) == []
    handle(topics.status(home.name), b"")
    assert len(sink.rejected_on(topics.status(home.name))) == 1
    assert sink.events == [] and store.count() == 0
    store.close()


def test_an_event_from_a_home_that_is_not_enrolled_is_rejected_and_not_acknowledged(desk):
    desk.start()
    stranger = desk.home("stranger", enroll=False)
    message, topic, payload = stranger.seal()
    desk.wire.publish(topic, payload)
    rejected_and_not_acknowledged(desk, stranger, topic, message.id, "signed by an unknown key")


def test_an_envelope_that_does_not_open_is_rejected_with_its_reason(desk):
    desk.start()
    home = desk.home()
    message = alarm(home.name)
    topic = topics.up(home.name, "alarm")
    other_center = Identity.generate("other-center")
    desk.wire.publish(topic, envelope.seal(encode(message), topic, home.key.sign, other_center.kem.public))
    rejected_and_not_acknowledged(desk, home, topic, message.id, "sealed to a key we do not hold")
    empty = topics.up(home.name, "event")
    desk.wire.publish(empty, b"")  # an empty message is news too: it is no cleared retained status
    rejected_and_not_acknowledged(desk, home, empty, None, "")


def test_an_event_signed_by_another_home_is_rejected_and_not_acknowledged(desk):
    desk.start()
    victim, impostor = desk.home("victim"), desk.home("impostor")
    message = alarm(victim.name)
    topic, payload = sealed(victim, message, signer=impostor.key)  # an enrolled key, but not this home's
    desk.wire.publish(topic, payload)
    rejected_and_not_acknowledged(desk, victim, topic, message.id, "signed by an unknown key")
    assert impostor.acked() == []


def test_an_event_moved_to_another_homes_topic_does_not_open(desk):
    desk.start()
    home, other = desk.home(), desk.home()
    message, topic, payload = home.seal()
    moved = topics.up(other.name, "alarm")
    desk.wire.publish(moved, payload)
    rejected_and_not_acknowledged(desk, other, moved, message.id, "")
    assert home.acked() == []


def test_a_body_that_is_not_an_event_is_rejected_and_not_acknowledged(desk):
    desk.start()
    home = desk.home()
    topic = topics.up(home.name, "alarm")
    for body in (b"\xff not json", json.dumps({"v": 1, "t": "event", "home": home.name}).encode()):
        desk.wire.publish(topic, envelope.seal(body, topic, home.key.sign, desk.key.kem.public))
        desk.settle()
    reasons = desk.sink.rejected_on(topic)
    assert len(reasons) == 2 and not any("internal error" in r for r in reasons), reasons
    assert home.acked() == []


def test_an_event_naming_another_home_in_its_body_is_rejected_and_not_acknowledged(desk):
    """Signed by this home's key for this home's topic, but claiming to be another home's alarm."""
    desk.start()
    home, other = desk.home(), desk.home()
    message = alarm(other.name)
    topic, payload = sealed(home, message, topic=topics.up(home.name, "alarm"))
    desk.wire.publish(topic, payload)
    rejected_and_not_acknowledged(desk, home, topic, message.id, f"event for {other.name}/alarm arrived on")
    assert other.acked() == []


def test_an_event_whose_class_differs_from_its_topic_is_rejected_and_not_acknowledged(desk):
    """A telemetry reading dressed as an alarm (or an alarm hidden in telemetry) would jump or
    lose its place in the queue: the class in the body must be the topic's."""
    desk.start()
    home = desk.home()
    for body_cls, topic_cls in (("telemetry", "alarm"), ("alarm", "telemetry")):
        message = alarm(home.name, cls=body_cls)
        topic, payload = sealed(home, message, topic=topics.up(home.name, topic_cls))
        desk.wire.publish(topic, payload)
        rejected_and_not_acknowledged(desk, home, topic, message.id, f"event for {home.name}/{body_cls} arrived on")


def test_an_alarm_opens_a_case_in_the_same_record_and_its_resend_joins_it_once(desk):
    """With the case desk (as the service runs it): the alarm's record opens the home's case,
    the re-sent copy adds nothing, and telemetry opens none."""
    desk.start(cases=True)
    home, quiet = desk.home(), desk.home()
    message, topic, payload = home.seal("alarm", "fall")
    desk.wire.publish(topic, payload)
    desk.settle()
    desk.wire.publish(topic, payload)
    quiet.send("telemetry", "temperature", {"c": 20})
    desk.settle()
    case = desk.cases.open_case_of(home.name)
    assert case is not None and case.alarms == [message.id] and case.kinds == ["fall"]
    assert desk.cases.open_case_of(quiet.name) is None
    assert home.acked() == [message.id, message.id]


def test_a_look_in_plan_is_taken_in_by_the_rounds_and_a_bad_one_is_said_ignored_once(desk):
    """With the rounds desk: a home's look-in plan is taken in as it is recorded (tonight's slots
    follow from it); a plan that does not validate is shown as ignored, once, the event still shown."""
    sink = desk.start(rounds=True)
    home, other = desk.home(), desk.home()
    plan = {"camera": "synthetic", "timezone": "Europe/Stockholm", "times": ["23:00", "03:00"], "tolerance_s": 900.0,
            "windows": [{"start": "22:00", "end": "06:00", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}],
            "max_per_night": 2, "privacy": "blur", "roles": ["night-staff"]}
    message, topic, payload = home.seal("event", "lookin_plan", plan)
    desk.wire.publish(topic, payload)
    bad, bad_topic, bad_payload = other.seal("event", "lookin_plan", {**plan, "times": ["25:99"]})
    desk.wire.publish(bad_topic, bad_payload)
    desk.settle()
    assert {slot.home for slot in desk.rounds.tonight(NOW)} == {home.name}  # taken in the first time
    assert len(sink.rejected_on(bad_topic)) == 1
    desk.wire.publish(topic, payload)  # both re-sent: duplicates go to the rounds no more
    desk.wire.publish(bad_topic, bad_payload)
    desk.settle()
    assert {slot.home for slot in desk.rounds.tonight(NOW)} == {home.name}
    assert sink.shown(message.id) == 1 and sink.shown(bad.id) == 1
    [ignored] = sink.rejected_on(bad_topic)
    assert "look-in plan ignored" in ignored
    assert sink.rejected_on(topics.up(home.name, "event")) == []


def test_a_duplicate_is_shown_once_but_acknowledged_again(desk):
    """The first ack may have been lost: the home re-sends, and must hear again that we have it."""
    sink = desk.start()
    home = desk.home()
    message, topic, payload = home.seal()
    desk.wire.publish(topic, payload)
    wait_for(lambda: home.acked() == [message.id], 10, "the first ack")
    desk.wire.publish(topic, payload)
    wait_for(lambda: home.acked() == [message.id, message.id], 10, "the second ack")
    assert sink.shown(message.id) == 1
    assert [row[0] for row in desk.rows()].count(message.id) == 1


def test_a_backlog_after_a_restart_is_shown_once_and_each_home_acknowledged_its_own_ids(desk):
    """Events wait at the broker while the receiver restarts; they come in as a batch, with a
    home's re-sent duplicate among them. Each home's ack is sealed to that home and names its
    ids once each, never another home's."""
    desk.start()
    first, second = desk.home(), desk.home()
    desk.stop()
    sent_first = [first.seal("alarm" if i == 0 else "event", "fall") for i in range(3)]
    sent_second = [second.seal("telemetry", "temperature", {"c": 20 + i}) for i in range(2)]
    for _, topic, payload in sent_first + sent_second + [sent_first[0]]:  # the alarm twice
        desk.wire.publish(topic, payload)
    sink = desk.start()
    ids_first, ids_second = [m.id for m, _, _ in sent_first], [m.id for m, _, _ in sent_second]
    wait_for(lambda: set(first.acked()) == set(ids_first) and set(second.acked()) == set(ids_second), 10,
             "both homes' acks")
    assert sorted(first.acked()) in (sorted(ids_first), sorted(ids_first + ids_first[:1]))  # one batch or two
    assert sorted(second.acked()) == sorted(ids_second)
    assert all(len(set(ack)) == len(ack) for ack in first.acks() + second.acks())  # an id once per ack
    assert [sink.shown(i) for i in ids_first + ids_second] == [1] * 5


@pytest.mark.parametrize("lane", ["all", "alarm"])
def test_an_event_the_store_cannot_record_is_not_acknowledged_and_is_recorded_once_it_can(desk, lane):
    """Recorded before acknowledged: the home deletes an alarm on our ack. While another process
    holds center.db's write lock the receiver acknowledges nothing (no ack to the home, no PUBACK
    to the broker) and says why; once the lock is free it records and acknowledges by itself.
    The alarm lane too, where no other write (presence) would notice the store is back: the
    failed batch must end the session, or the broker would not send it again."""
    desk.start(lane=lane)
    home = desk.home()
    holder = sqlite3.connect(desk.cfg.center.store, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    message = home.send()
    wait_for(lambda: "locked" in (desk.receiver.last_error or ""), 30, "the receiver to report the locked store")
    assert home.acked() == [] and desk.receiver.failed is None
    holder.execute("ROLLBACK")
    holder.close()
    wait_for(lambda: message.id in home.acked(), 30, "the ack once the store takes writes")
    assert desk.sink.shown(message.id) == 1 and message.id in [row[0] for row in desk.rows()]


def test_a_status_the_store_cannot_take_is_not_acknowledged_and_is_taken_once_it_can(desk):
    """A presence change (here a home coming online) while center.db is locked by another process
    is not a bad message: it must not be acknowledged to the broker as handled, or it is lost."""
    desk.start()
    home = desk.home()
    holder = sqlite3.connect(desk.cfg.center.store, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    home.status("online")
    wait_for(lambda: "locked" in (desk.receiver.last_error or ""), 30, "the receiver to report the locked store")
    holder.execute("ROLLBACK")
    holder.close()
    wait_for(lambda: presences(desk.sink, home) == ["online"], 30, "the status taken once the store takes writes")
    assert desk.store.homes()[home.name].state == "online"
    assert not [r for t, r in desk.sink.rejects if "internal error" in r]


def test_a_home_enrolled_or_removed_while_the_receiver_runs_is_trusted_or_refused_at_once(desk):
    desk.start()
    home = desk.home(enroll=False)
    home.enroll()
    first = home.send()
    desk.settle()
    assert home.acked() == [first.id]
    (desk.homes_dir / f"{home.name}.pub").unlink()
    second, topic, payload = home.seal()
    desk.wire.publish(topic, payload)
    rejected_and_not_acknowledged(desk, home, topic, second.id, "signed by an unknown key")


def test_a_stray_key_file_naming_an_enrolled_home_does_not_take_it_over(desk):
    """A leftover old-<home>.pub (an old key) sorts after <home>.pub; only <home>.pub is that home's key."""
    desk.start()
    home = desk.home()
    thief = Identity.generate(home.name)  # a key claiming to be the home's
    write_public(thief.public(), desk.homes_dir / f"zz-old-{home.name}.pub", force=True)
    forged = alarm(home.name)
    topic, payload = sealed(home, forged, signer=thief)
    desk.wire.publish(topic, payload)
    rejected_and_not_acknowledged(desk, home, topic, forged.id, "signed by an unknown key")
    good = home.send()
    wait_for(lambda: good.id in home.acked(), 10, "the home's own key still trusted")


def test_an_event_sealed_to_the_centers_next_key_opens_once_the_key_appears(desk):
    """A key rotation begun while the receiver runs: the new key file is read, not a restart needed."""
    sink = desk.start()
    home = desk.home()
    next_key = Identity.generate("center")
    desk.opening = [desk.key.kem, next_key.kem]
    message = alarm(home.name)
    topic = topics.up(home.name, "alarm")
    desk.wire.publish(topic, envelope.seal(encode(message), topic, home.key.sign, next_key.kem.public))
    wait_for(lambda: message.id in home.acked(), 10, "the ack of the event sealed to the next key")
    assert sink.shown(message.id) == 1


def test_an_audit_entry_is_shown_with_its_sealed_detail_opened(desk):
    sink = desk.start()
    home = desk.home()
    detail = {"by": "anna", "reason": "visit"}
    context = f"{home.name}/audit/4/unlock"
    sealed_detail = base64.b64encode(seal_at_rest(desk.key.kem.public, json.dumps(detail).encode(), context)).decode()
    entry = home.send("event", "audit", {"seq": 4, "kind": "unlock", "detail": {"result": "done"},
                                         "sealed": sealed_detail})
    lost = home.send("event", "audit", {"seq": 5, "kind": "unlock", "detail": {"result": "done"},
                                        "sealed": base64.b64encode(b"\x01" * 80).decode()})
    desk.settle()
    [opened] = [e for e in sink.events if e.id == entry.id]
    assert opened.body == {"seq": 4, "kind": "unlock", "detail": {"result": "done", "by": "anna", "reason": "visit"}}
    [unopened] = [e for e in sink.events if e.id == lost.id]  # shown, never dropped
    assert unopened.body["sealed"] is True and unopened.body["unopened"]
    assert set(home.acked()) == {entry.id, lost.id}


# -- presence ----------------------------------------------------------------------------------------


def presences(sink: Sink, home: Home) -> list[str]:
    with sink.lock:
        return [state for h, state in sink.presences if h == home.name]


def test_a_homes_heartbeat_shows_it_online_and_its_last_will_offline_each_change_once(desk):
    sink = desk.start()
    home = desk.home()
    home.status("online", NOW)
    home.status("online", NOW + timedelta(seconds=60))
    home.status("offline", NOW + timedelta(seconds=90))
    desk.settle()
    assert presences(sink, home) == ["online", "offline"]


def test_a_console_that_cannot_show_a_presence_change_stops_the_receiver_before_it_acknowledges(desk):
    """Shown, then recorded, then acknowledged: when staff cannot be shown what a batch holds,
    the receiver stops with the reason and acknowledges nothing more (the broker keeps it all)."""
    sink = desk.start(Sink(fail_presence=True))
    home = desk.home()
    home.status("online", NOW)
    message = home.send()  # after the status: in its batch or a later one
    wait_for(lambda: desk.receiver.failed is not None, 20, "the receiver to stop")
    desk.thread.join(10)
    assert not desk.thread.is_alive() and "cannot show events to staff" in desk.receiver.failed
    assert message.id not in home.acked() and sink.shown(message.id) == 0
    desk.store.close()


def test_a_status_signed_by_another_key_is_rejected(desk):
    sink = desk.start()
    home, impostor = desk.home(), desk.home("impostor")
    home.status("online", NOW, signer=impostor.key)
    desk.settle()
    assert presences(sink, home) == []
    assert len(sink.rejected_on(topics.status(home.name))) == 1


def test_a_status_naming_another_home_is_rejected(desk):
    sink = desk.start()
    home, other = desk.home(), desk.home()
    claim = StatusMessage(home=other.name, state="online", time=NOW, heartbeat_s=60)  # home's key, other's name
    desk.wire.publish(topics.status(home.name), envelope.sign(encode(claim), topics.status(home.name), home.key.sign))
    desk.settle()
    assert presences(sink, home) == [] and presences(sink, other) == []
    [reason] = sink.rejected_on(topics.status(home.name))
    assert f"status for {other.name!r}" in reason


def test_a_replayed_heartbeat_cannot_revive_an_offline_home_even_after_a_restart(desk):
    sink = desk.start()
    home = desk.home()
    home.status("online", NOW)
    home.status("offline", NOW + timedelta(seconds=30))
    home.status("online", NOW)  # recorded earlier, replayed by someone on the broker
    desk.settle()
    assert presences(sink, home) == ["online", "offline"]
    on, off = desk.store.replay_marks()[home.name]
    assert (on, off) == (NOW.timestamp(), (NOW + timedelta(seconds=30)).timestamp())
    desk.stop()
    sink = desk.start()
    home.status("online", NOW)
    desk.settle()
    assert presences(sink, home) == []
    assert desk.store.homes()[home.name].state == "offline"  # the replay revived nothing


def test_a_live_heartbeat_from_a_home_whose_clock_is_behind_keeps_it_online(desk):
    """Heard now is heard now, whatever the device's clock says; only the stamp of a retained
    copy (delivered when we subscribe) tells when it was last heard."""
    sink = desk.start()
    home = desk.home()
    home.status("online", NOW - timedelta(minutes=10), heartbeat_s=60)
    desk.settle()
    desk.clock.advance(60)
    desk.settle()
    assert presences(sink, home) == ["online"]
    desk.clock.advance(200)  # more than three heartbeats without a word
    wait_for(lambda: presences(sink, home) == ["online", "silent"], 10, "the home shown silent")


def test_a_retained_heartbeat_from_ten_minutes_ago_shows_the_home_silent_at_once(desk):
    home = desk.home()
    home.status("online", NOW - timedelta(minutes=10), heartbeat_s=60, retain=True)
    fresh = desk.home()
    fresh.status("online", NOW - timedelta(seconds=5), heartbeat_s=60, retain=True)
    try:
        sink = desk.start()  # the broker hands over the retained copies as we subscribe
        wait_for(lambda: presences(sink, home) == ["online", "silent"], 10, "the stale home shown silent")
        desk.settle()
        assert presences(sink, fresh) == ["online"]
    finally:
        for h in (home, fresh):
            desk.wire.publish(topics.status(h.name), b"", retain=True)


def test_a_retained_last_will_shows_the_home_offline_at_once(desk):
    """A home that went away before we started: its retained offline status is handed over as we
    subscribe, and staff see it offline (last heard unknown), not an error."""
    home = desk.home()
    home.status("offline", NOW - timedelta(minutes=10), retain=True)
    try:
        sink = desk.start()
        desk.settle()
        assert presences(sink, home) == ["offline"]
        assert sink.rejected_on(topics.status(home.name)) == []
    finally:
        desk.wire.publish(topics.status(home.name), b"", retain=True)


def test_a_heartbeats_sealed_fleet_report_is_kept_as_sent(desk):
    """The device's fleet report rides its heartbeat, sealed to the center: kept as it came."""
    desk.start()
    home = desk.home()
    report = base64.b64encode(b"\x02" * 120).decode()
    home.status("online", NOW, report=report)
    desk.settle()
    with sqlite3.connect(desk.cfg.center.store) as conn:
        [(kept,)] = conn.execute("SELECT report FROM homes_state WHERE home = ?", (home.name,)).fetchall()
    assert bytes(kept) == report.encode()


def test_an_event_counts_as_hearing_from_the_home(desk):
    sink = desk.start()
    home = desk.home()
    home.status("online", NOW, heartbeat_s=60)
    desk.settle()
    desk.clock.advance(150)
    home.send("telemetry", "temperature", {"c": 21})
    desk.settle()
    desk.clock.advance(150)  # 300 s after the heartbeat, 150 s after the event: not silent
    desk.settle()
    desk.settle()
    assert presences(sink, home) == ["online"]


def test_a_full_card_is_shown_when_it_starts_and_when_it_ends_not_on_every_heartbeat(desk):
    sink = desk.start()
    home = desk.home()
    for i, (storage, free) in enumerate([("ok", 900), (None, None), ("low", 10), ("low", 8), (None, None),
                                         ("failing", 0), ("ok", 500), ("ok", 600)]):
        extra = {} if storage is None else {"storage": storage, "free_bytes": free}
        home.status("online", NOW + timedelta(seconds=i), **extra)
    desk.settle()
    with sink.lock:
        shown = [(state, free) for h, state, free in sink.storages if h == home.name]
    assert shown == [("low", 10), ("failing", 0), ("ok", 500)]


def test_presence_is_state_in_the_store_and_each_change_is_fed_once_across_a_restart(desk):
    """A view started later knows the home is offline; the change is one feed row, not two."""
    desk.start()
    home = desk.home()
    home.status("offline", NOW)
    desk.settle()
    desk.stop()
    desk.start()
    home.status("offline", NOW)  # the same status again (a restarted receiver's retained copy)
    desk.settle()
    assert desk.store.homes()[home.name].state == "offline"
    rows = desk.store.db.query("SELECT ref FROM feed WHERE type = 'presence' AND home = ?", (home.name,))
    assert rows == [("offline",)]


def test_only_an_audit_entry_has_its_detail_opened_other_bodies_are_shown_as_sent(desk):
    """A dispenser's "sealed": true (the blister is intact) is the home's data, not a sealed detail."""
    sink = desk.start()
    home = desk.home()
    body = {"compartment": 3, "sealed": True}
    message = home.send("event", "dose_missed", body)
    desk.settle()
    [shown] = [e for e in sink.events if e.id == message.id]
    assert shown.body == body


# -- test traffic: its own class, never in the alarm lane, limited per home ----------------------


def test_a_test_dressed_as_an_alarm_is_rejected_and_not_acknowledged(desk):
    """A test must never ride the alarm lane: class alarm with kind test is refused, so is the reverse."""
    desk.start()
    home = desk.home()
    for cls, kind in (("alarm", "test"), ("test", "fall")):
        fields = {"v": 1, "t": "event", "id": new_id(), "home": home.name, "class": cls, "kind": kind,
                  "time": iso(NOW), "clock_synced": True, "body": {}}
        topic = topics.up(home.name, cls)
        desk.wire.publish(topic, envelope.seal(json.dumps(fields).encode(), topic, home.key.sign, desk.key.kem.public))
        rejected_and_not_acknowledged(desk, home, topic, fields["id"], "travels as class 'test' and only it does")


def test_test_traffic_past_its_limit_is_acknowledged_but_neither_recorded_nor_shown_and_said_once(desk):
    from center.testlimit import TESTS_BURST

    sink = desk.start()
    home = desk.home()
    sent = [home.send("test", "test", {"simulated": True, "tests": "alarm"}) for _ in range(TESTS_BURST + 5)]
    fall = home.send("alarm", "fall")  # not limited, and not held up
    wait_for(lambda: {m.id for m in sent} | {fall.id} <= set(home.acked()), 20, "every test acknowledged")
    shown = [m.id for m in sent if sink.shown(m.id)]
    recorded = {row[0] for row in desk.rows()}
    assert len(shown) == TESTS_BURST and set(shown) <= recorded and sink.shown(fall.id) == 1
    assert len(recorded & {m.id for m in sent}) == TESTS_BURST
    reasons = sink.rejected_on(topics.up(home.name, "test"))
    assert sum(int(r.split()[0]) for r in reasons) == 5 and all("over the limit" in r for r in reasons), reasons
    other = desk.home()  # the limit is per home
    first = other.send("test", "test", {"simulated": True, "tests": "event"})
    wait_for(lambda: sink.shown(first.id) == 1, 10, "another home's test shown")


# -- the link to the broker: what staff are told of it --------------------------------------------


@pytest.fixture
def make_desk(tmp_path, pki):
    """A desk on a broker of its own, started with the given settings: for tests that stop it or
    need it configured otherwise than the session's broker."""
    made: list = []

    def make(*extra: str, max_queued: int | None = None) -> tuple[Desk, Broker]:
        broker = Broker(tmp_path / "broker", pki, max_queued=max_queued, extra=extra)
        broker.start()
        made.append(broker)
        desk = Desk(tmp_path, pki, broker)
        made.append(desk)
        return desk, broker
    yield make
    for thing in reversed(made):
        if isinstance(thing, Desk) and not made[0].running:
            made[0].start()  # the desk clears its session at the broker
        thing.close()


def links(sink: Sink) -> list[str]:
    with sink.lock:
        return list(sink.links)


def test_what_the_broker_grants_is_noted_at_connect_and_a_queue_too_small_for_our_homes_warned_of(desk):
    """The session's broker runs on Mosquitto's defaults (Receive Maximum 20, so a queue of 1,000):
    too small for three homes' windows (3 x 500). The service reports what the receiver noted."""
    desk.home(), desk.home()  # with the probe: three homes
    desk.start()
    assert desk.receiver.broker_limits.receive_maximum == 20
    [warning] = [w for w in desk.receiver.broker_warnings if "default limits" in w]
    assert "default limits" in warning and "too small for 3 homes" in warning


class Delays(mqttconn.Backoff):
    """The receiver's own reconnect backoff (0.5 s doubling to 30 s), remembering each delay it chose."""

    def __init__(self) -> None:
        super().__init__(0.5, 30.0)
        self.chosen: list[float] = []

    def next_delay(self) -> float:
        delay = super().next_delay()
        self.chosen.append(delay)
        return delay


def test_a_broker_that_refuses_the_receiver_is_never_shown_as_connected(make_desk):
    """A CONNACK with a failure code is no link: staff must not be told "connected"."""
    desk, broker = make_desk("clientid_prefixes wire-")  # the wire client gets in, the receiver is refused
    sink = desk.launch()
    wait_for(lambda: broker.log_text().count("not authorised") >= 2, 30, "the broker to refuse the receiver twice")
    assert set(links(sink)) == {"refused"} and not desk.receiver.connected.is_set()  # told, never "connected"
    assert "refused this receiver" in desk.receiver.last_error
    assert desk.receiver.failed is None and desk.thread.is_alive()  # it keeps trying


def test_a_broker_restart_is_shown_to_staff_as_disconnected_then_connected_again(make_desk):
    desk, broker = make_desk()
    sink = desk.start()
    broker.stop()
    wait_for(lambda: links(sink) == ["connected", "disconnected"], 30, "the lost link shown")
    assert not desk.receiver.connected.is_set()
    broker.start()
    wait_for(lambda: links(sink) == ["connected", "disconnected", "connected"], 30, "the link shown again")
    assert desk.receiver.connected.is_set()


def test_after_a_good_connection_the_next_reconnect_waits_the_shortest_delay_again(make_desk):
    """The backoff grows while the broker is away; once it accepts us, a later drop starts again
    from the shortest delay, not from where the last outage left it."""
    desk, broker = make_desk()
    delays = Delays()
    sink = desk.start(backoff=delays)
    broker.stop()
    wait_for(lambda: len(delays.chosen) >= 4, 30, "four failed reconnects")  # the next delay is 4-8 s
    broker.start()
    wait_for(lambda: links(sink).count("connected") == 2, 30, "the receiver back on the broker")
    before = len(delays.chosen)
    broker.restart()
    wait_for(lambda: links(sink).count("connected") == 3, 30, "the receiver back after the restart")
    assert delays.chosen[before] <= delays.low, delays.chosen


class RemovingSink(Sink):
    """Shows events; on the first event of `home` removes that home's key file and holds the
    batch (it is being recorded) until the test says the receiver has noticed the removal."""

    def __init__(self, desk: Desk, home: Home) -> None:
        super().__init__()
        self.desk, self.home = desk, home
        self.removed, self.go = threading.Event(), threading.Event()

    def event(self, message, received):
        super().event(message, received)
        if message.home == self.home.name and not self.removed.is_set():
            (self.desk.homes_dir / f"{self.home.name}.pub").unlink()
            self.removed.set()
            self.go.wait(20)


def test_a_home_removed_while_its_batch_is_in_hand_costs_its_ack_not_the_receiver(desk):
    """Un-enrolled between opening and acknowledging: nothing can be sealed to it, so no ack
    (it re-sends and is refused then); every other home is still served."""
    home = desk.home()
    sink = desk.start(RemovingSink(desk, home))
    message = home.send()
    assert sink.removed.wait(10), "the home's event was not shown"
    desk.probe.send(desk.probe_class, "probe", {})  # the next batch is opened while this one is recorded
    wait_for(lambda: home.name not in desk.homes.keys, 10, "the receiver to notice the removal")
    sink.go.set()
    desk.settle()
    assert desk.receiver.failed is None and desk.thread.is_alive()
    assert sink.shown(message.id) == 1 and message.id in [row[0] for row in desk.rows()]
    assert home.acked() == []


class StoppingSink(Sink):
    """Holds the recording of `home`'s first event (the sink shows it from the recorder thread)
    until some home is shown silent, which the receiving thread does after it last looked at the
    recording; then tells the receiver to stop and lets the recording finish."""

    def __init__(self, desk: Desk, home: Home) -> None:
        super().__init__()
        self.desk, self.home = desk, home
        self.held, self.go = threading.Event(), threading.Event()

    def event(self, message, received):
        super().event(message, received)
        if message.home == self.home.name and not self.held.is_set():
            self.held.set()
            self.go.wait(20)

    def presence(self, home, state):
        super().presence(home, state)
        if state == "silent" and self.held.is_set():
            self.desk.receiver.stop()
            self.go.set()


def test_a_batch_still_being_recorded_when_the_receiver_stops_is_acknowledged_on_the_way_out(desk):
    """Told to stop while a batch is being recorded: the receiver waits for the record and
    acknowledges it before it disconnects, so the home is not left re-sending what we have."""
    quiet, home = desk.home("quiet"), desk.home()
    sink = desk.start(StoppingSink(desk, home))
    quiet.status("online", NOW, heartbeat_s=60)
    desk.settle()
    message = home.send()
    assert sink.held.wait(10), "the event was not shown"
    desk.clock.advance(200)  # `quiet` falls silent at the receiver's next look: the stop comes then
    desk.thread.join(20)
    assert not desk.thread.is_alive() and sink.go.is_set()
    wait_for(lambda: message.id in home.acked(), 10, "the ack sent on the way out")
    assert sink.shown(message.id) == 1 and message.id in [row[0] for row in desk.rows()]
    desk.store.close()


def test_an_event_taken_in_before_the_store_failed_is_sent_again_by_the_broker_after_a_restart(desk):
    """The broker's PUBACK waits for the record: a receiver that stops with an event not yet
    recorded gets it again from its persistent session, and records and acknowledges it then."""
    desk.start()
    home = desk.home()
    holder = sqlite3.connect(desk.cfg.center.store, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    message = home.send()
    wait_for(lambda: "locked" in (desk.receiver.last_error or ""), 30, "the receiver to report the locked store")
    desk.stop()
    holder.execute("ROLLBACK")
    holder.close()
    sink = desk.start()
    wait_for(lambda: message.id in home.acked(), 30, "the ack from the restarted receiver")
    assert sink.shown(message.id) == 1 and message.id in [row[0] for row in desk.rows()]


# -- the broker's dropped-message counter --------------------------------------------------------


def away_session(pki, broker: Broker, topic: str) -> None:
    """A persistent session subscribed to topic, then away: the broker queues for it (and drops)."""
    cert, key = pki.client("center")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"away-{os.urandom(3).hex()}",
                         protocol=mqtt.MQTTv5)
    client.tls_set(ca_certs=str(pki.ca), certfile=str(cert), keyfile=str(key))
    subscribed = threading.Event()
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
    client.on_subscribe = lambda *a: subscribed.set()
    expiry = Properties(PacketTypes.CONNECT)
    expiry.SessionExpiryInterval = 600
    client.connect("127.0.0.1", broker.port, clean_start=True, properties=expiry)
    client.loop_start()
    assert subscribed.wait(10), "the away session did not subscribe"
    client.disconnect()
    client.loop_stop()


def dropped_warnings(desk: Desk) -> list[str]:
    return [w for w in list(desk.receiver.broker_warnings) if "dropped" in w]


def test_a_broker_dropping_for_a_full_queue_is_warned_of_with_each_rise_replacing_the_last(make_desk, pki):
    """Another persistent session (away, its queue 5) overflows: the broker counts the drops on
    $SYS, and the receiver keeps one warning that names the latest rise."""
    desk, broker = make_desk("sys_interval 1", max_queued=5)
    desk.start()
    home = desk.home()
    away_session(pki, broker, f"trygg/v1/{home.name}/up/#")
    for _ in range(6):  # the sixth does not fit: one drop (one drop cannot be counted in two readings)
        home.send("telemetry", "temperature", {"c": 20})
    desk.settle()
    [first] = wait_for(lambda: dropped_warnings(desk), 20, "the first dropped-message warning")
    assert "for 2 homes" in first  # the probe and this home
    desk.home()  # enrolled: the next warning names three homes
    desk.settle()
    home.send("telemetry", "temperature", {"c": 21})  # one more drop
    [rise] = wait_for(lambda: [w for w in dropped_warnings(desk) if "for 3 homes" in w] and dropped_warnings(desk),
                      20, "the warning of the rise")
    assert "the broker dropped 1 more message(s)" in rise, (first, rise)


def test_a_drop_warning_keeps_the_warning_of_what_the_connect_granted(desk):
    """Both stay on `trygg center receivers`: the queue too small for our homes (from the CONNACK),
    and the broker's count of drops (the lab broker runs Mosquitto's default limits)."""
    desk.home(), desk.home()  # with the probe, three homes: more than Mosquitto's default queue holds
    desk.start()
    wait_for(lambda: desk.receiver._dropped is not None, 15, "the broker's first count of drops")
    [limits] = [w for w in desk.receiver.broker_warnings if "default limits" in w]
    # The shared test broker counts other tests' drops too, and its own readings may come in between:
    # what must hold is that the limits' warning stays, beside one warning of the latest drops.
    for rise in (7, 2):
        desk.receiver._broker_dropped(str(desk.receiver._dropped + rise).encode())  # as $SYS reads
        warnings = desk.receiver.broker_warnings
        assert warnings[0] == limits and len(warnings) == 2 and "for 3 homes" in warnings[1], warnings
        assert warnings[1].startswith("the broker dropped "), warnings


# -- mutants of center/receiver.py that survive this file, and why none can matter ---------------
# tools/mutate.py (issue 13), lines as in center/receiver.py at commit 7c6d1c2. Each line: where, the
# mutation, why it cannot change what staff see, what is recorded or what is acknowledged.
# L196 delete `return` (a dropped count that is no integer): only Mosquitto writes $SYS, always an integer; homes and centers may not (ACL).
# L212 `last_error = None` dropped at connect: last_error is read by no one on the receiving side but a log line's de-duplication: logging only.
# L246 `and` -> `or` (full): with a batch opened and waiting, the loop waits for the recording before reading on: flow control only.
# L246 `>=` -> `>` MAX_BATCH: flow control at 501 instead of 500 waiting messages; the broker's Receive Maximum bounds them anyway.
# L246 `opened_next is None`: `full` never true then (500 waiting with none opened cannot occur): no flow control, same records and acks.
# L247 delete `if full:` / L248 no `wait(...)`: the loop polls instead of waiting for the recording: CPU only.
# L249 negated `full` / negated `recording` in the poll timeout: how long one poll waits: latency only, nothing is skipped.
# L251 `and` -> `or`, `<` -> `<=`, the read-all loop deleted or negated: batch sizes only (one fsync per batch); every message is still opened, recorded and acknowledged in order.
# L253 no pump inside the read-all loop: it reads one message per turn: batch sizes only.
# L266 `and` -> `or` / negated (silent tick): mark_silent runs on more turns; the store decides each silence once, so it is shown once: cost only.
# L272 no DISCONNECT on stop: the socket closes all the same, the session is kept as it is (no will); the final ack was already written.
# L274 recorder.shutdown(wait=False) / removed: a recording left running when the link dropped still records once (the store decides what is new) and is not acknowledged on the dead link; the broker sends it again.
# L284 `_store_lost` dropped after a failed record: log line and last_error only; the store wait before reconnecting reports the same.
# L285 `_pending = []` dropped: what was read after a failed record is sent again by the broker with the same packet ids; both copies deduplicated (shown once) and acknowledged.
# L286 `return False` -> `return None`: equivalent (the caller tests falsiness).
# L324 no "internal error" line for an unexpected exception: no input reaches it (every bad input is an EnvelopeError or ValueError); only a fault of the receiver's own callees does.
# L328 delete or negate the 60 s tick / L329 no forget_full: only when test-limit buckets that have refilled are forgotten; a refilled bucket and a new one allow the same: memory only.
# L343 delete `if not accepted` / L344 delete its `return`: an empty batch then records nothing and shows nothing all the same (an empty transaction): equivalent.

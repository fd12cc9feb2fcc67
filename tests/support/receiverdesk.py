"""A receiving desk for tests: a real Receiver on a thread against a real Mosquitto (mutual
TLS), a real SQLite store and a real homes directory; homes with throwaway keys; a "wire"
client with the center's broker identity that publishes what a home or an attacker would and
reads every acknowledgement (tests/test_receiver_checks.py, tests/test_receiver_link.py)."""

import os
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from agent.sealer import Sealer
from base import mqttconn
from base.keys import Identity, write_public
from center.config import CenterConfig
from center.homes import HomeRegistry
from center.receiver import Receiver
from center.roundsdesk import RoundsDesk
from center.service import case_desk
from center.store import EventStore
from protocol import envelope, topics
from protocol.events import Event
from protocol.ids import new_id
from protocol.messages import AckMessage, EventMessage, decode, encode
from protocol.presence import signed_status
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


def presences(sink: Sink, home: Home) -> list[str]:
    with sink.lock:
        return [state for h, state in sink.presences if h == home.name]


@pytest.fixture
def make_desk(tmp_path, pki):
    """A desk on a broker of its own, started with the given settings: for tests that stop it or
    need it configured otherwise than the session's broker."""
    made: list = []

    def make(*extra: str, max_queued: int | None = None, acl: str | None = None) -> tuple[Desk, Broker]:
        """acl: the broker's ACL text instead of the one Trygg ships."""
        if acl is not None:
            (tmp_path / "acl").write_text(acl)
            extra = (*extra, f"acl_file {tmp_path / 'acl'}")
        broker = Broker(tmp_path / "broker", pki, max_queued=max_queued, extra=extra, acl=acl is None)
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

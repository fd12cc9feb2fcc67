"""The receiver: subscribe to every home, open and verify, dedupe, record durably, acknowledge, show.

Order matters and is the point of this module: a new event is shown to staff, then recorded
(fsynced), then acknowledged, because the home deletes an alarm on our ack. If showing fails
(the console is gone), the receiver stops before recording or acknowledging anything, so the
home keeps the alarm and re-sends it to a receiver that works. The broker's PUBACK to us is
also held until the batch is recorded, so our persistent session redelivers after a crash.
Duplicates are acknowledged again (the first ack may have been lost) but shown only once. Anything that
does not open and verify is reported and skipped; nothing a broker or an attacker sends can
stop the receiver. Owns the center's MQTT session; output goes to the sink it is given.

Look-in rounds (roundsdesk.py, when given): each new plan, camera fault and look-in result is
passed to the desk as it is shown, and a thread of its own asks the desk for new rounds
alerts every few seconds — also while the broker is unreachable, since a look-in falls due
by the clock — and marks each shown only after the sink showed it.

Audit events: a home's audit entry arrives with its detail sealed to the center key, as the
device stores it (agent/audit.py); it is opened here with the center's keys and shown with the
full detail. The record keeps the envelope as received. A detail that does not open is shown
as sealed, with the reason, never dropped: the entry's existence still counts.

At start the receiver refuses a TLS key that others can read (the center key and center.db are
checked where they are opened: agent/keys.py, store.py).
"""

import logging
import threading
from collections import defaultdict
from dataclasses import replace
from typing import Callable, Protocol

import paho.mqtt.client as mqtt

from base import mqttconn
from .config import CenterConfig
from base.errors import EnvelopeError, TryggError
from base.auditdetail import open_detail
from base.keys import Identity, check_private
from protocol.kem import KemPrivate
from protocol.presence import verify_status
from protocol import envelope, topics
from protocol.messages import MAX_ACK_IDS, AckMessage, EventMessage, decode, encode

from .homes import HomeRegistry
from .rounds import Alert
from .roundsdesk import RoundsDesk
from .store import EventStore, Received

log = logging.getLogger(__name__)
MAX_BATCH = 500


class OutputFailed(TryggError, RuntimeError):
    """Staff can no longer be shown events: stop rather than acknowledge what nobody saw."""


class Sink(Protocol):
    """Where the receiver reports what happened: the console, or a test's list."""

    def event(self, message: EventMessage, received: float) -> None: ...
    def presence(self, home: str, state: str) -> None: ...
    def storage(self, home: str, state: str, free_bytes: int | None) -> None: ...
    def rejected(self, topic: str, reason: str) -> None: ...
    def link(self, state: str, detail: str) -> None: ...
    def lookin(self, alert: Alert) -> None: ...


class Receiver:
    def __init__(self, config: CenterConfig, identity: Identity, homes: HomeRegistry, store: EventStore,
                 sink: Sink, clock, opening: list[KemPrivate] | None = None,
                 load_opening: Callable[[], list[KemPrivate]] | None = None,
                 rounds: RoundsDesk | None = None) -> None:
        check_private(config.broker.key, "TLS private key")  # before anything connects
        self.cfg = config
        self.identity = identity
        self.opening = opening or [identity.kem]  # current key, plus next and retired ones during a rotation
        self._load_opening = load_opening
        self._opening_loaded_at = -1e9
        self.homes = homes
        self._storage: dict[str, str] = {}  # each home's last reported card state
        self.store = store
        self.sink = sink
        self.clock = clock
        self.backoff = mqttconn.Backoff(0.5, 30.0)
        self._stop = threading.Event()
        self._pending: list[mqtt.MQTTMessage] = []
        self.connected = threading.Event()
        self.failed: str | None = None
        self.last_error: str | None = None
        # A stable client id, so the broker keeps this receiver's session while it restarts.
        self.client_id = config.center.name
        self.rounds = rounds

    def run(self) -> None:
        """Receive until stop() is called; reconnects by itself. A storage failure ends it (failed set)."""
        ticker = None
        if self.rounds is not None:
            ticker = threading.Thread(target=self._rounds_loop, name="rounds", daemon=True)
            ticker.start()
        try:
            mqttconn.keep_connected(self._stop, self.cfg.broker, self._new_client, self._session, self.backoff,
                                    self._error, self.cfg.center.session_expiry_s, name="receiver")
        except Exception as exc:  # e.g. the event store cannot be written: stop rather than ack unrecorded
            self.failed = f"{type(exc).__name__}: {exc}"
            log.exception("receiver stopped")
        finally:
            if ticker is not None:
                self._stop.set()
                ticker.join()

    def stop(self) -> None:
        self._stop.set()

    def _error(self, message: str) -> None:
        self.last_error = message

    def _new_client(self) -> mqtt.Client:
        client = mqttconn.make_client(self.client_id, self.cfg.broker, manual_ack=True)
        client.on_connect = self._on_connect
        client.on_message = lambda c, u, message: self._pending.append(message)
        return client

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("receiver: broker refused connection: %s", reason_code)
            return
        group = self.cfg.center.shared_group
        up = f"$share/{group}/{topics.UP_WILDCARD}" if group else topics.UP_WILDCARD
        client.subscribe([(up, 1), (topics.STATUS_WILDCARD, 1)])
        self.backoff.reset()
        self.connected.set()
        self.last_error = None
        self._show(self.sink.link, "connected", f"{self.cfg.broker.host}:{self.cfg.broker.port}")

    def _session(self, client: mqtt.Client) -> None:
        try:
            while not self._stop.is_set():
                ok, _ = mqttconn.pump(client, [], timeout=0.5)
                # Read everything already waiting before recording: one fsync and one ack per batch.
                while ok and self._pending and len(self._pending) < MAX_BATCH:
                    before = len(self._pending)
                    ok, _ = mqttconn.pump(client, [], timeout=0)
                    if len(self._pending) == before:
                        break
                if self._pending:
                    batch, self._pending = self._pending, []
                    self.handle(client, batch)
                for home in self.homes.newly_silent(self.clock.monotonic(), self.cfg.center.silent_after_heartbeats):
                    self._show(self.sink.presence, home, "silent")
                if not ok:
                    return
            client.disconnect()
        finally:
            if self.connected.is_set():
                self._show(self.sink.link, "disconnected", f"{self.cfg.broker.host}:{self.cfg.broker.port}")
            self.connected.clear()

    # -- message handling ----------------------------------------------------------------
    def handle(self, client: mqtt.Client, batch: list[mqtt.MQTTMessage]) -> None:
        accepted: list[tuple[EventMessage, Received]] = []
        self.homes.refresh()
        for message in batch:
            try:
                where = topics.parse(message.topic)
                if where.channel == "up":
                    accepted.append(self._open_event(message, where))
                elif where.channel == "status":
                    self._presence(message, where.home)
                else:
                    raise ValueError(f"unexpected channel {where.channel!r}")
            except (EnvelopeError, ValueError) as exc:
                if not (message.retain and not message.payload):  # a cleared retained status is no news
                    self._show(self.sink.rejected, message.topic, str(exc))
            except OutputFailed:
                raise
            except Exception as exc:  # a bug must cost one message, never the receiver
                log.exception("receiver: unexpected error on %s", message.topic)
                self._show(self.sink.rejected, message.topic, f"internal error: {type(exc).__name__}: {exc}")
        if accepted:
            known = self.store.known([event.id for event, _ in accepted])
            for event, received in accepted:
                if event.id not in known:
                    known.add(event.id)
                    self._show(self.sink.event, event, received.received)
                    self._to_rounds(event, received)
            self.store.record([received for _, received in accepted])
        for message in batch:  # PUBACK to the broker only now: recorded, or rejected for good
            client.ack(message.mid, message.qos)
        if accepted:
            self._acknowledge(client, [event for event, _ in accepted])
        marks = self.homes.take_changed_marks()
        if marks:
            self.store.save_replay_marks(marks)

    @staticmethod
    def _show(show, *args) -> None:
        try:
            show(*args)
        except Exception as exc:
            raise OutputFailed(f"cannot show events to staff: {type(exc).__name__}: {exc}") from exc

    # -- look-in rounds ----------------------------------------------------------------------
    def _to_rounds(self, event: EventMessage, received: Received) -> None:
        """Before the event is recorded: a crash here means it is re-sent and taken in again."""
        if self.rounds is None or not self.rounds.wants(event):
            return
        try:
            self.rounds.observe(event, received.received)
        except ValueError as exc:  # a plan that does not validate: ignored, and staff are told
            log.warning("receiver: look-in plan from %s ignored: %s", event.home, exc)
            self._show(self.sink.rejected, received.topic, f"look-in plan ignored: {exc}")
        except Exception:  # the rounds must never cost an alarm its delivery
            log.exception("receiver: rounds could not take in %s from %s", event.kind, event.home)

    def _rounds_loop(self) -> None:
        while not self._stop.wait(self.cfg.rounds.evaluate_every_s):
            try:
                self.tick_rounds()
            except OutputFailed as exc:
                self.failed = str(exc)
                log.error("receiver stopped: %s", exc)
                self.stop()
            except Exception:  # logged; alarms keep flowing and the next tick tries again
                log.exception("receiver: rounds evaluation failed")

    def tick_rounds(self) -> None:
        """Show every new rounds alert once: marked shown only after the sink took it."""
        alerts = self.rounds.new_alerts(self.clock.now(), self._reachable)
        synced = self.clock.synced() if alerts else True
        for alert in alerts:
            alert = replace(alert, clock_synced=synced)
            self._show(self.sink.lookin, alert)
            self.rounds.mark_shown(alert)

    def _reachable(self, home: str) -> bool | None:
        presence = self.homes.presence.get(home)
        if presence is None or presence.state not in ("online", "offline", "silent"):
            return None  # not heard since we started: no guess either way
        return presence.state == "online"

    def _open_event(self, message: mqtt.MQTTMessage, where: topics.Topic) -> tuple[EventMessage, Received]:
        try:
            opened = envelope.open_sealed(message.payload, message.topic, self.opening,
                                          self.homes.signer_for(where.home))
        except EnvelopeError as exc:
            if not (str(exc).startswith("sealed to a key we do not hold") and self._reload_opening_keys()):
                raise
            opened = envelope.open_sealed(message.payload, message.topic, self.opening,
                                          self.homes.signer_for(where.home))
        event = decode(opened.body, EventMessage)
        if event.home != where.home or event.cls != where.cls:
            raise ValueError(f"event for {event.home}/{event.cls} arrived on {message.topic}")
        if event.kind == "audit" and event.body.get("sealed"):
            event = self._open_audit(event)
        self.homes.seen(where.home, self.clock.monotonic())
        received = Received(event.id, event.home, event.cls, message.topic, bytes(message.payload), self.clock.time())
        return event, received

    def _open_audit(self, event: EventMessage) -> EventMessage:
        """The audit entry with its sealed detail opened (or, if it will not open, marked so)."""
        body = dict(event.body)
        try:
            try:
                detail = open_detail(body, event.home, self.opening)
            except TryggError:
                if not self._reload_opening_keys():
                    raise
                detail = open_detail(body, event.home, self.opening)
        except (TryggError, ValueError, KeyError, TypeError) as exc:
            log.warning("receiver: audit entry %s of %s: detail does not open: %s", body.get("seq"), event.home, exc)
            return event.model_copy(update={"body": {**body, "sealed": True, "unopened": str(exc)}})
        body.pop("sealed", None)
        return event.model_copy(update={"body": {**body, "detail": detail}})

    def _reload_opening_keys(self) -> bool:
        """A key rotation began while we run (center.next.key appeared): read the keys again,
        at most every few seconds, so hostile messages cannot make us re-read them constantly."""
        now = self.clock.monotonic()
        if self._load_opening is None or now - self._opening_loaded_at < 5.0:
            return False
        self._opening_loaded_at = now
        try:
            keys = self._load_opening()
        except TryggError as exc:
            log.error("receiver: cannot re-read the center keys: %s", exc)
            return False
        changed = {(k.suite_id, k.public.kid) for k in keys} != {(k.suite_id, k.public.kid) for k in self.opening}
        self.opening = keys
        return changed

    def _presence(self, message: mqtt.MQTTMessage, home: str) -> None:
        status = verify_status(message.payload, message.topic, home, self.homes.signer_for(home))
        stamp = status.time.timestamp()
        if not self.homes.accept_status(home, status.state, stamp):
            return  # an older or replayed status: our newer knowledge stands
        if not message.retain:
            self.homes.seen(home, self.clock.monotonic())
        elif status.state == "online":  # retained: last heard when it was stamped
            self.homes.seen(home, self.clock.monotonic() - max(self.clock.time() - stamp, 0.0))
        if self.homes.set_state(home, status.state, status.heartbeat_s):
            self._show(self.sink.presence, home, status.state)
        if status.storage is not None and self._storage.get(home, "ok") != status.storage:
            self._show(self.sink.storage, home, status.storage, status.free_bytes)
        if status.storage is not None:
            self._storage[home] = status.storage  # a full card is shown when it starts and when it ends

    def _acknowledge(self, client: mqtt.Client, events: list[EventMessage]) -> None:
        """One signed, sealed ack per home per batch, covering every id (duplicates too)."""
        by_home: dict[str, list[str]] = defaultdict(list)
        for event in events:
            if event.id not in by_home[event.home]:
                by_home[event.home].append(event.id)
        for home, ids in by_home.items():
            public = self.homes.keys.get(home)
            if public is None:  # un-enrolled between open and ack: it re-sends, we ack then
                continue
            topic = topics.ack(home)
            for i in range(0, len(ids), MAX_ACK_IDS):
                ack = AckMessage(home=home, ids=ids[i : i + MAX_ACK_IDS], time=self.clock.now())
                client.publish(topic, envelope.seal(encode(ack), topic, self.identity.sign, public.kem), qos=1)

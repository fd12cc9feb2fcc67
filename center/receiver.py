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

Test traffic (class test) is limited per home (testlimit.py): the excess is acknowledged, not
recorded, and said once per batch. What the broker grants and drops is noted (brokernotes.py).

"Connected" is said only once the broker granted the lane's subscriptions (SUBACK). A refused
one, or a loopback probe never delivered back (subscheck.Reading keeps both), is logged as an
error per topic, kept as last_error and in broker_warnings (`trygg center receivers`), shown on
the link as "not receiving", and the lane counts as not connected.

At start the receiver refuses a TLS key that others can read (the center key and center.db are
checked where they are opened: agent/keys.py, store.py).
"""

import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from typing import Protocol

import paho.mqtt.client as mqtt

from base import mqttconn
from base.errors import EnvelopeError, TryggError
from base.keys import Identity, check_private
from protocol import envelope, topics
from protocol.kem import KemPrivate
from protocol.messages import MAX_ACK_IDS, AckMessage, EventMessage, encode
from protocol.presence import verify_status

from . import brokerlimits, subscheck
from .brokerlimits import BrokerLimits
from .brokernotes import BrokerNotes
from .cases import CaseDesk
from .config import CenterConfig
from .db import StoreUnavailable
from .homes import HomeRegistry
from .opening import Opener
from .rounds import Alert
from .roundsdesk import RoundsDesk
from .store import EventStore, Received
from .testlimit import TestLimit

LANES = ("all", "alarm", "bulk")


class Ticks:
    """When periodic work on the receiving thread last ran, by name (monotonic seconds)."""

    def __init__(self) -> None:
        self._last: dict[str, float] = {}

    def due(self, name: str, every_s: float, now: float) -> bool:
        if now - self._last.get(name, -1e18) < every_s:
            return False
        self._last[name] = now
        return True

log = logging.getLogger(__name__)
MAX_BATCH = 500
RECEIVE_MAXIMUM = 3 * MAX_BATCH  # unacknowledged at once: one batch recording, one opened, one read


@dataclass(frozen=True)
class _Opened:
    """A batch as read from the broker, and its events that opened and verified."""

    batch: list[mqtt.MQTTMessage]
    accepted: list[tuple[EventMessage, Received]]
    over_limit: list[EventMessage]  # test traffic past its limit: acknowledged, not recorded


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


def lane_subscriptions(cfg: CenterConfig, lane: str) -> list[str]:
    """What a lane takes: alarms alone have a lane (their own session and broker queue), so
    no backlog of events or telemetry is ever in front of an alarm. Statuses are taken by
    every receiver (not shared): presence changes are decided once in the store."""
    group = cfg.center.shared_group
    classes = {"alarm": ["alarm"], "bulk": ["event", "telemetry", "test"], "all": ["+"]}[lane]
    up = [f"{topics.PREFIX}/+/up/{cls}" for cls in classes]
    up = [f"$share/{group}/{topic}" for topic in up] if group else up
    return up + ([topics.STATUS_WILDCARD] if lane != "alarm" else [])


class Receiver:
    def __init__(self, config: CenterConfig, identity: Identity, homes: HomeRegistry, store: EventStore,
                 sink: Sink, clock, opening: list[KemPrivate] | None = None,
                 load_opening: Callable[[], list[KemPrivate]] | None = None,
                 rounds: RoundsDesk | None = None, cases: CaseDesk | None = None, lane: str = "all") -> None:
        check_private(config.broker.key, "TLS private key")  # before anything connects
        self.cfg = config
        self.identity = identity
        self.homes = homes
        # current key, plus next and retired ones during a rotation
        self.opener = Opener(homes, opening or [identity.kem], load_opening, clock)
        self.store = store
        self.sink = sink
        self.clock = clock
        self.backoff = mqttconn.Backoff(0.5, 30.0)
        self._stop = threading.Event()
        self._pending: list[mqtt.MQTTMessage] = []
        self.connected = threading.Event()
        self.failed: str | None = None
        self.last_error: str | None = None
        if lane not in LANES:
            raise ValueError(f"lane must be one of {', '.join(LANES)}, got {lane!r}")
        self.lane = lane
        # A stable client id per lane, so the broker keeps each lane's queue while it restarts.
        self.client_id = config.center.name + ("-alarm" if lane == "alarm" else "")
        self.rounds = rounds
        self.cases = cases
        self._ticks = Ticks()
        self.tests = TestLimit()
        self.broker_notes = BrokerNotes(lane, lambda: len(homes.keys), config.center.session_expiry_s)  # CONNACK, $SYS
        self.reading = subscheck.Reading(subscheck.identity_name(config.broker.cert), lane)  # SUBACK and probe

    def run(self) -> None:
        """Receive until stop() is called; reconnects by itself. A storage failure ends it (failed set)."""
        ticker = None
        if self.rounds is not None:
            ticker = threading.Thread(target=self._rounds_loop, name="rounds", daemon=True)
            ticker.start()
        try:
            mqttconn.keep_connected(self._stop, self.cfg.broker, self._new_client, self._session, self.backoff,
                                    self._error, self.cfg.center.session_expiry_s, name="receiver",
                                    receive_maximum=RECEIVE_MAXIMUM)
        except Exception as exc:  # e.g. the event store cannot be written: stop rather than ack unrecorded
            self.failed = f"{type(exc).__name__}: {exc}"
            log.exception("receiver stopped")
        finally:
            if ticker is not None:
                self._stop.set()
                ticker.join()

    def stop(self) -> None:
        self._stop.set()

    def _store_lost(self, exc: Exception) -> None:
        message = f"the store cannot record now, nothing acknowledged: {exc}"
        if message != self.last_error:
            log.error("receiver: %s", message)
        self.last_error = message

    def _wait_for_store(self) -> None:
        """Connect to the broker only with a store to record into: until then, events wait at the
        broker and in the homes' outboxes."""
        while not self._stop.is_set():
            try:
                self.store.ping()
                return
            except StoreUnavailable as exc:
                self._store_lost(exc)
                self._stop.wait(self.backoff.next_delay())

    def _error(self, message: str) -> None:
        self.last_error = message

    def _new_client(self) -> mqtt.Client:
        self._wait_for_store()
        client = mqttconn.make_client(self.client_id, self.cfg.broker, manual_ack=True)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_publish = self._on_publish
        return client

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        if message.topic == brokerlimits.DROPPED_TOPIC:
            self.broker_notes.dropped(message.payload)
            return
        if self.reading.heard(client):  # a "receives nothing" the probe said is taken back
            self.last_error = None
            self._link_up()
        if subscheck.is_probe(message.payload):  # ours or another receiver's: never an event
            client.ack(message.mid, message.qos)
        else:
            self._pending.append(message)

    @property
    def broker_warnings(self) -> list[str]:
        """What is too small at the broker for the homes we serve; the service reports it."""
        return self.reading.warnings + self.broker_notes.warnings

    @property
    def broker_limits(self) -> BrokerLimits | None:
        """What the broker granted at the last connect (its CONNACK)."""
        return self.broker_notes.limits

    @property
    def not_receiving(self) -> list[str]:
        """What this lane receives nothing on (refused, or its probe never came back); [] when it reads."""
        return list(self.reading.refusals)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("receiver: broker refused connection: %s", reason_code)
            self._error(f"the broker refused this receiver: {reason_code}")
            self._show(self.sink.link, "refused", f"{self.cfg.broker.host}:{self.cfg.broker.port}: {reason_code}")
            return
        optional = {brokerlimits.DROPPED_TOPIC: "the broker's dropped-message count"} if self.lane != "alarm" else {}
        self.reading.subscribe(client, self.subscriptions(), optional)  # the drop count: once per process
        self.broker_notes.connack(properties)
        self.backoff.reset()
        self.last_error = None

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        """The SUBACK: "connected" only when every topic the lane reads was granted."""
        refused = self.reading.suback(client, mid, reason_codes, time.monotonic())
        if refused:
            self._not_receiving(refused)
        elif refused is not None:
            self._link_up()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self.reading.puback(mid, reason_code)

    def _link_up(self) -> None:
        self.connected.set()
        self._show(self.sink.link, "connected", f"{self.cfg.broker.host}:{self.cfg.broker.port}")

    def _not_receiving(self, lines: list[str]) -> None:
        """The broker gives this lane nothing to read: say so in the log, last_error, the link."""
        for line in lines:
            log.error("receiver (%s lane): %s", self.lane, line)
        self.last_error = lines[0] + (f" (and {len(lines) - 1} more topic(s))" if len(lines) > 1 else "")
        self.connected.clear()
        self._show(self.sink.link, "not receiving", self.last_error)

    def subscriptions(self) -> list[str]:
        return lane_subscriptions(self.cfg, self.lane)

    def _session(self, client: mqtt.Client) -> None:
        """Read, open, record, acknowledge: a pipeline of two batches.

        While one batch is recorded (mostly a wait for the store's commit) on the recorder
        thread, the next is read and opened here; batches are still recorded and acknowledged
        one at a time, in order. Measured on the fleet bench: see docs/operations.md.
        """
        recorder = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"record-{self.lane}")
        recording: tuple[Future, _Opened] | None = None
        opened_next: _Opened | None = None
        try:
            while not self._stop.is_set():
                full = opened_next is not None and len(self._pending) >= MAX_BATCH
                if full:  # enough waiting: let the recording finish before reading more
                    wait([recording[0]], timeout=0.5)
                ok, _ = mqttconn.pump(client, [], timeout=0 if full else 0.002 if recording else 0.5)
                # Read everything already waiting before recording: one fsync and one ack per batch.
                while ok and self._pending and len(self._pending) < MAX_BATCH:
                    before = len(self._pending)
                    ok, _ = mqttconn.pump(client, [], timeout=0)
                    if len(self._pending) == before:
                        break
                if self._pending and opened_next is None:
                    batch, self._pending = self._pending, []
                    try:
                        opened_next = self._open_batch(batch)
                    except StoreUnavailable as exc:  # a status not stored: acknowledge nothing, reconnect
                        self._store_lost(exc)
                        return
                if recording is not None and recording[0].done():
                    if not self._settle(client, recording, ok):
                        return
                    recording = None
                if recording is None and opened_next is not None:
                    recording = (recorder.submit(self._record, opened_next.accepted), opened_next)
                    opened_next = None
                if self.lane != "alarm" and self._ticks.due("silent", 1.0, time.monotonic()):
                    self.mark_silent()
                overdue = self.reading.overdue(time.monotonic())  # the probe never came back
                if overdue:
                    self._not_receiving(overdue)
                if not ok:
                    return
            if recording is not None:  # stopping: what is recorded is acknowledged first
                self._settle(client, recording, ok=True)
            client.disconnect()
        finally:
            recorder.shutdown(wait=True)  # a batch still being recorded is not acknowledged: it comes again
            if self.connected.is_set():
                self._show(self.sink.link, "disconnected", f"{self.cfg.broker.host}:{self.cfg.broker.port}")
            self.connected.clear()

    def _settle(self, client: mqtt.Client, recording: tuple[Future, "_Opened"], ok: bool) -> bool:
        """A recorded batch is acknowledged (when still connected); False if the store failed it."""
        try:
            recording[0].result()
        except StoreUnavailable as exc:  # nothing acknowledged: the broker keeps it all
            self._store_lost(exc)
            self._pending = []
            return False
        if ok:
            self._finish(client, recording[1])
        return True

    # -- message handling ----------------------------------------------------------------
    def handle(self, client: mqtt.Client, batch: list[mqtt.MQTTMessage]) -> None:
        """One batch at once: open, record, acknowledge (the session pipelines these steps)."""
        opened = self._open_batch(batch)
        self._record(opened.accepted)
        self._finish(client, opened)

    def _open_batch(self, batch: list[mqtt.MQTTMessage]) -> "_Opened":
        """Open and verify every message; presence is taken in here, rejections reported."""
        accepted: list[tuple[EventMessage, Received]] = []
        over_limit: list[EventMessage] = []
        self.homes.refresh()
        for message in batch:
            try:
                where = topics.parse(message.topic)
                if where.channel == "up":
                    event, received = self._open_event(message, where)
                    if event.cls == "test" and not self.tests.allow(event.home, time.monotonic()):
                        over_limit.append(event)
                    else:
                        accepted.append((event, received))
                elif where.channel == "status":
                    self._presence(message, where.home)
                else:
                    raise ValueError(f"unexpected channel {where.channel!r}")
            except (EnvelopeError, ValueError) as exc:
                if not message.retain or (message.payload and self.store.first_rejection(
                        message.topic, bytes(message.payload), self.clock.time())):  # retained: once, ever
                    self._show(self.sink.rejected, message.topic, str(exc))
            except (OutputFailed, StoreUnavailable):  # not this message's fault: nothing is acknowledged
                raise
            except Exception as exc:  # a bug must cost one message, never the receiver
                log.exception("receiver: unexpected error on %s", message.topic)
                self._show(self.sink.rejected, message.topic, f"internal error: {type(exc).__name__}: {exc}")
        for home, count in Counter(event.home for event in over_limit).items():
            self._show(self.sink.rejected, topics.up(home, "test"), f"{count} test event(s) over the limit of "
                       f"{self.tests.rule()} per home: acknowledged, not recorded")
        if self._ticks.due("tests", 60.0, time.monotonic()):
            self.tests.forget_full(time.monotonic())
        return _Opened(batch, accepted, over_limit)

    def _finish(self, client: mqtt.Client, opened: "_Opened") -> None:
        """After the batch is recorded: PUBACK to the broker, the signed acks to the homes."""
        for message in opened.batch:  # PUBACK to the broker only now: recorded, or rejected for good
            client.ack(message.mid, message.qos)
        if opened.accepted or opened.over_limit:
            self._acknowledge(client, [event for event, _ in opened.accepted] + opened.over_limit)
        marks = self.homes.take_changed_marks()
        if marks:
            self.store.save_replay_marks(marks)

    def _record(self, accepted: list[tuple[EventMessage, Received]]) -> None:
        if not accepted:
            return
        """Record the batch (new events, their feed rows, their cases: one transaction), then log
        the new ones. Rounds see an event before it is recorded: a crash between means it is
        re-sent and taken in again."""
        known = self.store.known([event.id for event, _ in accepted])
        by_id = {}
        for event, received in accepted:
            if event.id not in known and event.id not in by_id:
                self._to_rounds(event, received)
            by_id[event.id] = event
        on_new = None
        if self.cases is not None:
            cases = self.cases

            def on_new(tx, new: list[Received]) -> list[tuple]:
                return cases.on_events(tx, [(by_id[r.id], r.received) for r in new])
        for received in self.store.record([received for _, received in accepted], on_new):
            self._show(self.sink.event, by_id[received.id], received.received)

    def mark_silent(self) -> None:
        for home in self.store.mark_silent(self.clock.time(), self.cfg.center.silent_after_heartbeats):
            self._show(self.sink.presence, home, "silent")

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
        """Raise every new rounds alert once (the store decides, across receivers); a visit needed
        opens a case in the same transaction."""
        self._presence_now = self.store.homes()
        alerts = self.rounds.new_alerts(self.clock.now(), self._reachable)
        synced = self.clock.synced() if alerts else True
        for alert in alerts:
            alert = replace(alert, clock_synced=synced)
            also = None
            if alert.kind == "visit_needed" and self.cases is not None:
                def also(tx, a=alert):
                    return self.cases.on_visit_needed(tx, a.slot.home, a.slot.reason, a.time.timestamp())
            if self.rounds.mark_shown(alert, also):
                self._show(self.sink.lookin, alert)

    def _reachable(self, home: str) -> bool | None:
        presence = getattr(self, "_presence_now", {}).get(home)
        if presence is None or presence.state not in ("online", "offline", "silent"):
            return None  # never heard: no guess either way
        return presence.state == "online"

    def _open_event(self, message: mqtt.MQTTMessage, where: topics.Topic) -> tuple[EventMessage, Received]:
        event = self.opener.open_event(bytes(message.payload), message.topic, where)
        received = Received(event.id, event.home, event.cls, message.topic, bytes(message.payload), self.clock.time())
        return event, received

    def _presence(self, message: mqtt.MQTTMessage, home: str) -> None:
        status = verify_status(message.payload, message.topic, home, self.homes.signer_for(home))
        stamp = status.time.timestamp()
        if not self.homes.is_new_status(home, status.state, stamp):
            return  # an older or replayed status: our newer knowledge stands
        now = self.clock.time()
        if not message.retain:
            heard = now
        elif status.state == "online":  # retained: last heard when it was stamped
            heard = min(stamp, now)
        else:
            heard = None
        if self.store.set_presence(home, status.state, now, status.heartbeat_s, heard):
            self._show(self.sink.presence, home, status.state)
        if status.report:  # sealed by the device; opened only to show it (fleet.py)
            self.store.set_report(home, status.report.encode(), now)
        if status.storage is not None and self.store.set_storage(home, status.storage, status.free_bytes, now):
            self._show(self.sink.storage, home, status.storage, status.free_bytes)
        self.homes.note_status(home, status.state, stamp)  # only once stored: a copy sent again is taken

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

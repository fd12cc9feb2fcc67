"""The uplink: one MQTT session to the municipal broker, draining the outbox alarms first.

Owns the MQTT connection and its thread, nothing else. Sends rows in the outbox's order with
a window of QoS 1 messages in flight (pipelining against the broker's PUBACKs) and a second,
end-to-end window of messages the center has not yet acknowledged, so a drained backlog never
overruns the receiver's queue at the broker (Mosquitto silently drops beyond
max_queued_messages). Rows are deleted only on the center's signed acknowledgement; alarms
are never held back by the end-to-end window. Re-sends follow the acks (resend.py): what a
later acknowledgement overtook goes again at once, into silence only alarms and probes. Rows
the outbox could not store (a full disk) are held in memory here, sent first and kept until
the center acknowledges them.
Reconnects with capped, jittered exponential backoff, to the broker brokerchoice.py picks
(a second one while the first is unreachable). Publishes signed retained presence (online on
connect, every heartbeat and when the command challenge changes; offline as the last will).
Commands arriving on the home's command topic are handed, unjudged, to the command handler.
Never seals, never decides content.
"""

import logging
import random
import socket
import threading
from collections import OrderedDict
from typing import Callable

import paho.mqtt.client as mqtt

from base import mqttconn
from .brokerchoice import BrokerChoice, CappedBackoff
from .config import DeviceConfig
from base.errors import EnvelopeError
from .centerkeys import CenterKeys
from base.keys import Identity
from .outbox import Outbox, Row
from protocol.presence import signed_status
from protocol import envelope, topics
from protocol.messages import AckMessage, decode
from .resend import Resends

log = logging.getLogger(__name__)

MAX_HELD = {0: 1000, 1: 100, 2: 0}  # rows held in memory per class priority when the disk is full


class Uplink:
    def __init__(self, config: DeviceConfig, device: Identity, center: CenterKeys, outbox: Outbox, clock,
                 rand: random.Random | None = None, on_command: Callable[[str, bytes], None] = lambda t, p: None,
                 presence_extra: Callable[[], dict] = dict) -> None:
        self.cfg = config
        self.home = config.home.id
        self.device = device
        self.center = center
        self.outbox = outbox
        self.clock = clock
        self.on_command = on_command
        self.presence_extra = presence_extra
        self._presence_due = threading.Event()
        self.backoff = mqttconn.Backoff(config.uplink.backoff_min_s, config.uplink.backoff_max_s, rand)
        self.choice = BrokerChoice.of(config.broker, config.broker_fallback, f"{self.home}-probe")
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._thread = threading.Thread(target=self._run, name="uplink", daemon=True)
        self._direct_lock = threading.Lock()
        self._direct: list[_Direct] = []  # waiting for the uplink thread to publish
        self._direct_sent: dict[int, _Direct] = {}  # mid -> published, waiting for the PUBACK
        self._held_lock = threading.Lock()
        self._held: OrderedDict[str, Row] = OrderedDict()  # not stored (disk full): kept until acknowledged
        self.held_dropped = 0  # held rows given up because memory's bound was reached
        self._reset_session()
        self.link = "disconnected"
        self.connected_since: float | None = None
        self.last_puback: float | None = None
        self.last_ack: float | None = None
        self.last_error: str | None = None
        self.reconnects = 0
        self.published = 0

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.choice.leave.set()
        self.wake()
        self._thread.join(timeout=10)
        self._wake_r.close()
        self._wake_w.close()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def refresh_presence(self) -> None:
        """Publish the online status again soon (its challenge changed)."""
        self._presence_due.set()
        self.wake()

    def wake(self) -> None:
        """Tell the uplink thread there is something new to send (a committed row)."""
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # already woken, or closing

    def hold(self, row: Row) -> bool:
        """Send a row the outbox could not store and keep it in memory until the center has it.

        False when memory's bound for its class is reached (the caller counts it as lost); the
        oldest held alarm makes way for a new one, counted in held_dropped and reported as lost."""
        with self._held_lock:
            same = [i for i, r in self._held.items() if r.prio == row.prio]
            if len(same) >= MAX_HELD[row.prio]:
                if row.prio != 0 or not same:
                    return False  # the caller counts it as lost
                del self._held[same[0]]
                self.held_dropped += 1  # an older alarm given up for a newer one: lost too
            self._held[row.id] = row
            self._held_unsent.add(row.id)  # sent on this connection too, not only on the next
        self.wake()
        return True

    def held_alarms(self) -> int:
        """Alarms held in memory (not stored: a full card) that the center has not yet acknowledged."""
        with self._held_lock:
            return sum(1 for row in self._held.values() if row.prio == 0)

    def send_now(self, topic: str, payload: bytes, timeout: float) -> str | None:
        """Publish once over the live link and wait for the broker's PUBACK; None when it has it,
        else why not. For what must not outlive the moment (a look-in picture): never written to
        the outbox, never queued while the link is down, and not re-sent after a reconnect."""
        if self.link != "connected":
            return f"the home's link to the broker is {self.link}"
        direct = _Direct(topic, payload)
        with self._direct_lock:
            self._direct.append(direct)
        self.wake()
        if not direct.done.wait(timeout):
            direct.fail(f"the broker did not confirm within {timeout:g} s")
        return direct.error

    def status(self) -> dict:
        return {
            "link": self.link,
            "connected_since": self.connected_since,
            "last_puback": self.last_puback,
            "last_ack": self.last_ack,
            "last_error": self.last_error,
            "reconnects": self.reconnects,
            "published": self.published,
            "in_flight": len(self._inflight),
            "awaiting_ack": len(self._awaiting),
            "held_in_memory": len(self._held),
            "held_dropped": self.held_dropped,
            **self.choice.status(),
        }

    # -- connection loop -----------------------------------------------------------------
    def _run(self) -> None:
        backoff = CappedBackoff(self.backoff, self.choice, self.clock.monotonic)
        while not self._stop.is_set():  # one round per broker: the choice says when to move
            mqttconn.keep_connected(self.choice.leave, self.choice.broker, self._new_client, self._session, backoff,
                                    self._error, name="uplink")
            if not self._stop.is_set() and self.choice.switch(self.clock.monotonic()):
                self._stop.wait(self.backoff.next_delay())  # both brokers failing: not in a tight loop

    def _error(self, message: str) -> None:
        self.last_error = message
        self.choice.down(self.clock.monotonic())

    def _new_client(self) -> mqtt.Client:
        client = mqttconn.make_client(self.home, self.choice.broker, self.cfg.uplink.tcp_nodelay, self.cfg.uplink.inflight,
                                      section=self.choice.section)
        will = signed_status(self.home, "offline", self.clock.now(), self.cfg.uplink.heartbeat_s, self.device.sign)
        client.will_set(topics.status(self.home), will, qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def _session(self, client: mqtt.Client) -> None:
        self._reset_session()
        self.link = "connecting"
        try:
            self._exchange(client)
        finally:
            self._mark_down()

    def _exchange(self, client: mqtt.Client) -> None:
        next_heartbeat = 0.0
        while not self.choice.poll(self.clock.monotonic()):  # stop() or time to move
            ok, woken = mqttconn.pump(client, [self._wake_r], timeout=0.5)
            if woken:
                self._drain_wake()
            if not ok:
                self.last_error = self.last_error or "connection lost"
                return
            self._apply_deliveries()
            self._send_direct(client)
            if self.link != "connected":
                continue
            now = self.clock.monotonic()
            if self._puback_overdue(now):
                return
            if now >= next_heartbeat or self._presence_due.is_set():
                self._presence_due.clear()
                self._publish_status(client, "online")
                next_heartbeat = now + self.cfg.uplink.heartbeat_s
            self._send(client, now)
        if self.link == "connected":
            if self._stop.is_set():  # clean stop: say so ourselves, the will is not sent
                self._publish_status(client, "offline")
            for _ in range(20):
                if not client.want_write():
                    break
                mqttconn.pump(client, [], 0.05)
            client.disconnect()

    def _puback_overdue(self, now: float) -> bool:
        """A broker that keeps the link up but stops confirming our publishes (seen with Mosquitto
        2.0.11 under a flood: its in-flight quota for our session is used up for good) would hold
        the window full for ever. A new connection is a new session: reconnect."""
        limit = max(60.0, 2.0 * self.cfg.broker.keepalive_s)
        oldest = next(iter(self._published_at.values()), now)  # in publish order: the first is the oldest
        if now - oldest <= limit:
            return False
        self.last_error = f"no PUBACK from the broker for {now - oldest:.0f} s with the link up; reconnecting"
        log.warning("uplink: %s", self.last_error)
        return True

    def _mark_down(self) -> None:
        self.choice.down(self.clock.monotonic())
        if self.connected_since is not None:
            self.reconnects += 1
        self.link = "disconnected"
        self.connected_since = None
        self._apply_deliveries()
        self._send_direct(None)

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    # -- sending -------------------------------------------------------------------------
    def _reset_session(self) -> None:
        """A new connection starts from scratch: everything unacknowledged is eligible again."""
        self._cursor: dict[int, int] = {}
        self._awaiting = Resends(self.cfg.outbox.resend_after_s, self.cfg.uplink.inflight)
        with self._held_lock:
            self._held_unsent = set(self._held)  # held rows not yet sent on this connection
        self._inflight: dict[int, Row] = {}
        self._published_at: dict[int, float] = {}  # mid -> monotonic time of its PUBLISH
        self._acked: list[str] = []

    def _send(self, client: mqtt.Client, now: float) -> None:
        """Fill the in-flight window: rows held in memory, new alarms, due re-sends, new rows in order.

        New alarms go past everything: neither re-sends nor the end-to-end window hold them back.
        """
        window = self.cfg.uplink.inflight
        if window - len(self._inflight) <= 0:
            return
        ok = self._publish(client, now, self._unsent_held(window - len(self._inflight)))
        ok = ok and self._publish(client, now, self.outbox.next_batch(self._cursor, window - len(self._inflight),
                                                                      classes=1))
        ok = ok and self._publish(client, now, self._due_resends(now, window - len(self._inflight)))
        limit = min(window - len(self._inflight), self.cfg.uplink.max_unacked - len(self._awaiting))
        if ok and limit > 0:
            self._publish(client, now, self.outbox.next_batch(self._cursor, limit))

    def _publish(self, client: mqtt.Client, now: float, rows: list[Row]) -> bool:
        for row in rows:
            info = client.publish(row.topic, row.payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                log.warning("uplink: publish failed rc=%s", info.rc)
                return False
            self.published += 1
            self._inflight[info.mid] = row
            self._published_at[info.mid] = now
            if row.seq:  # a held row was never stored: it has no place in the outbox's order
                self._cursor[row.prio] = max(self._cursor.get(row.prio, 0), row.seq)
            self._held_unsent.discard(row.id)
            self._awaiting.sent(row.id, row.prio, now)
        return True

    def _unsent_held(self, limit: int) -> list[Row]:
        with self._held_lock:
            self._held_unsent &= self._held.keys()
            return [r for i, r in self._held.items() if i in self._held_unsent][:limit]

    def _due_resends(self, now: float, limit: int) -> list[Row]:
        """Messages to send again now (resend.py decides which), alarms first."""
        due = self._awaiting.due(now, limit)
        if not due:
            return []
        with self._held_lock:
            held = [self._held[i] for i in due if i in self._held]
        rows = sorted(self.outbox.get(due) + held, key=lambda r: (r.prio, r.seq))
        for event_id in set(due) - {r.id for r in rows}:
            self._awaiting.forget(event_id)  # no longer waiting anywhere: acknowledged meanwhile
        if rows:
            log.info("uplink: re-sending %d unacknowledged messages", len(rows))
        return rows

    def _send_direct(self, client: mqtt.Client | None) -> None:
        """Publish what send_now() handed over; with the link down, fail it (and what awaits a PUBACK)."""
        with self._direct_lock:
            pending, self._direct = self._direct, []
        if self.link != "connected" or client is None:
            for direct in pending + list(self._direct_sent.values()):
                direct.fail("the home's link to the broker went down")
            self._direct_sent.clear()
            return
        for direct in pending:
            if direct.done.is_set():
                continue  # the caller gave up waiting: too late to send
            info = client.publish(direct.topic, direct.payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                direct.fail(f"publish failed: {mqtt.error_string(info.rc)}")
            else:
                self._direct_sent[info.mid] = direct
            direct.payload = b""  # not kept in memory longer than the publish

    def _publish_status(self, client: mqtt.Client, state: str) -> None:
        extra = self.presence_extra() if state == "online" else {}
        payload = signed_status(self.home, state, self.clock.now(), self.cfg.uplink.heartbeat_s, self.device.sign, **extra)
        client.publish(topics.status(self.home), payload, qos=1, retain=True)

    # -- callbacks (run inside pump, on the uplink thread) --------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.last_error = f"broker refused connection: {reason_code}"
            log.error("uplink: %s", self.last_error)
            return
        self.link = "connected"
        self.connected_since = self.clock.time()
        self.last_error = None
        self.backoff.reset()
        self.choice.up(self.clock.monotonic())
        client.subscribe([(topics.ack(self.home), 1), (topics.command(self.home), 1)])
        log.info("uplink: connected to %s:%s", self.choice.broker.host, self.choice.broker.port)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self.link == "connected":
            log.warning("uplink: disconnected (%s)", reason_code)
        self.last_error = f"disconnected: {reason_code}"
        self.link = "disconnected"

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        direct = self._direct_sent.pop(mid, None)
        if direct is not None:
            if reason_code.is_failure:
                direct.fail(f"the broker refused it: {reason_code}")
            direct.done.set()
            return
        self._published_at.pop(mid, None)
        row = self._inflight.pop(mid, None)
        if row is None:
            return
        if reason_code.is_failure:  # stays awaiting the center's ack, so it is re-sent in time
            log.warning("uplink: broker refused %s message: %s", row.cls, reason_code)
            return
        self.last_puback = self.clock.time()

    def _on_message(self, client, userdata, message) -> None:
        if message.topic != topics.ack(self.home):
            try:
                self.on_command(message.topic, message.payload)  # judged on the command thread
            except Exception:  # nothing on the command topic may take the uplink down
                log.exception("uplink: could not queue a message from %s", message.topic)
            return
        try:
            opened = envelope.open_sealed(message.payload, message.topic, [self.device.kem], self._center_key)
            ack = decode(opened.body, AckMessage)
            if ack.home != self.home:
                raise ValueError(f"ack for home {ack.home!r}")
        except (EnvelopeError, ValueError) as exc:
            log.warning("uplink: ignored a message on %s that is not a valid ack: %s", message.topic, exc)
            return
        self.last_ack = self.clock.time()
        self._acked.extend(ack.ids)

    def _center_key(self, kid: bytes):
        """Acks are accepted from the current and, during a rotation, the next center key."""
        return next((k.sign for k in self.center.all() if envelope.signer_kid(k.sign) == kid), None)

    def _apply_deliveries(self) -> None:
        """Delete what the center has acknowledged: it has recorded those rows durably."""
        if not self._acked:
            return
        acked, self._acked = self._acked, []
        self._awaiting.acked(acked, self.clock.monotonic())
        with self._held_lock:
            for event_id in acked:
                self._held.pop(event_id, None)
        self.outbox.delete(acked)


class _Direct:
    """One send_now() message between the caller's thread and the uplink thread."""

    def __init__(self, topic: str, payload: bytes) -> None:
        self.topic, self.payload = topic, payload
        self.error: str | None = None
        self.done = threading.Event()

    def fail(self, error: str) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()

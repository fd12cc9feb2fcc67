"""Sending one staff command to one home and waiting for the device's signed answer.

What `trygg center unlock|lock|ping|status` does: read the home's retained, signed status
(is it online? what is its current challenge?), send a command signed with the staff
member's key and sealed to the home's device key, echoing the challenge so it is fresh even
when the device's clock is not synchronized, then wait for the `command_result` event the
device sends back through its outbox (sealed to the center, signed by the home). Only that
signed result says whether the door opened; nothing here assumes success. It listens to the
home's events as an extra subscriber and never acknowledges them: the receiver does that.
A look-in's picture comes on the home's lookin topic, sealed to this staff member's own key:
only they can open it, and it is kept in memory only until the caller takes it.

A home may be on its second broker (the center's [broker_fallback], agent/brokerchoice.py): then
there is one session per broker, opened at once (a dead broker costs at most CONNECT_TIMEOUT_S,
never the other's command). The home is where its freshest valid signed status says (by the
status's time: one device clock wrote both; an unverified status is ignored; a last will carries
the time its session began, so it loses to a heartbeat sent later through the other broker and
wins over one sent before through the other). A command is published
through every broker we reach, the home's first: the device listens on one broker at a time with
a clean session (nothing is queued for it on the other), and a copy that does reach it twice is
refused as a replay by its id (agent/freshness.py: the id is stored before anything acts), so
it acts once. Results and pictures are awaited on both. While a command waits for its answer
and the home comes online on a broker (it moved there, or came back), the command is published
there again: the night the first broker dies is also the minute staff press "unlock".
"""

import logging
import secrets
import select
import threading
from dataclasses import dataclass
from datetime import timedelta

import paho.mqtt.client as mqtt

from base import mqttconn
from base.configbase import BrokerConfig
from .config import CenterConfig
from base.errors import ConfigError, EnvelopeError, KeyFileError, TryggError
from base.keys import Identity, PublicIdentity
from protocol.actions import command_args
from protocol.presence import verify_status
from protocol import envelope, topics
from protocol.ids import new_id
from protocol.kem import KemPrivate
from protocol.messages import CommandMessage, EventMessage, LookinMessage, StatusMessage, decode, encode

log = logging.getLogger(__name__)
STATUS_WAIT_S = 3.0  # a retained status arrives right after the subscription is granted
PICTURE_WAIT_S = 10.0  # the picture is published before the result; this only covers reordering
CONNECT_TIMEOUT_S = 3.0  # TCP + TLS per broker, all at once: what a dead (silent) broker may cost
SETTLE_S = 0.05  # after its SUBACK, how long a broker may take with the retained status (sent right behind it)
OFFLINE_SETTLE_S = 1.0  # the same, when what we have says offline (staff hear "offline" this much later at most)
BROKER_NAMES = {"broker": "first", "broker_fallback": "second"}  # as the device's trygg status names them


class NoAnswer(TryggError, TimeoutError):
    """The home did not answer: offline, unknown, or too slow. Send someone."""


@dataclass
class Answer:
    command: CommandMessage
    result: dict  # the device's command_result body
    sent_at: float
    answered_at: float
    clock_synced: bool | None
    via: str = ""  # the config section of the broker the answer came through

    @property
    def outcome(self) -> str:
        return self.result.get("outcome", "")

    def to_json(self) -> dict:
        return {**self.result, "home": self.command.home, "sent": self.sent_at, "answered": self.answered_at,
                "round_trip_ms": round((self.answered_at - self.sent_at) * 1000, 2),
                "device_clock_synced": self.clock_synced,
                **({"broker": BROKER_NAMES.get(self.via, self.via)} if self.via else {})}


class _Lane:
    """One broker's session: its section ([broker] or [broker_fallback]), client and what came on it."""

    def __init__(self, section: str, broker: BrokerConfig) -> None:
        self.section, self.broker = section, broker
        self.client: mqtt.Client | None = None
        self.error = ""
        self.config_error: Exception | None = None
        self.subscribed_at: float | None = None
        self.status: StatusMessage | None = None  # the last valid one that came on this broker

    @property
    def address(self) -> str:
        return f"{self.broker.host}:{self.broker.port}"

    def close(self) -> None:
        client, self.client = self.client, None
        mqttconn.close_socket(client)


class Commander:
    """One MQTT session per broker at the center for commands; reusable for many commands to one home."""

    def __init__(self, cfg: CenterConfig, center_keys: list[KemPrivate], staff: Identity | None,
                 home: PublicIdentity, clock) -> None:
        self.cfg = cfg
        self.center_keys = center_keys
        self.staff = staff
        self.home = home
        self.clock = clock
        self.status: StatusMessage | None = None  # the freshest valid status of any broker
        self.home_section = "broker"  # where that status came from: where the home is
        self._results: dict[str, tuple[dict, str]] = {}
        self._pictures: dict[str, LookinMessage] = {}
        self.sealed_pictures: list[bytes] = []  # staff is None: pictures as they came, still sealed
        self._pending: tuple[str, bytes] | None = None  # (id, sealed payload) of the command awaiting its answer
        self.resent = 0  # commands published again to a home that came online meanwhile
        self._lanes = [_Lane("broker", cfg.broker)]
        if getattr(cfg, "broker_fallback", None) is not None:
            self._lanes.append(_Lane("broker_fallback", cfg.broker_fallback))

    # -- session --------------------------------------------------------------------------------
    def __enter__(self) -> "Commander":
        self._connect_all()
        live = self._live()
        if not live:
            for lane in self._lanes:
                if lane.config_error is not None:  # a file the config names: the technician's to fix, as before
                    raise lane.config_error
            raise NoAnswer("; ".join(f"cannot reach the broker {lane.address}: {lane.error}" for lane in self._lanes))
        for lane in self._lanes:
            if lane.config_error is not None:
                log.warning("commands: %s; going on through the other broker", lane.config_error)
        try:
            self._pump_until(lambda: all(lane.subscribed_at is not None for lane in self._live()), STATUS_WAIT_S,
                             "the broker did not grant the subscription", partial_ok=True)
            self._pump_until(self._statuses_in, STATUS_WAIT_S, f"no status from {self.home.name}: it has never "
                             "connected, or its key is not enrolled here", step=SETTLE_S / 2)  # may end by time alone
        except BaseException:
            self.__exit__()
            raise
        return self

    def _connect_all(self) -> None:
        """Every broker at once, each bounded by CONNECT_TIMEOUT_S (TCP and TLS: paho's connect
        time-out); one still connecting after that is given up, and its thread closes what it opened."""
        done, handover = threading.Event(), threading.Lock()

        def connect(lane: _Lane) -> None:
            client = None
            try:
                client = mqttconn.make_client(f"{self.cfg.center.name}-cmd-{secrets.token_hex(4)}", lane.broker,
                                              section=lane.section)
                client.connect_timeout = CONNECT_TIMEOUT_S
                client.on_connect = lambda c, u, f, rc, p: self._on_connect(lane, c, rc)
                client.on_subscribe = lambda *a: setattr(lane, "subscribed_at", self.clock.monotonic())
                client.on_message = lambda c, u, m: self._on_message(lane, m)
                mqttconn.connect(client, lane.broker)
            except (OSError, ValueError) as exc:
                lane.error = str(exc) or type(exc).__name__
                lane.config_error = exc if isinstance(exc, (ConfigError, KeyFileError)) else None
                client = None
            with handover:
                late = done.is_set()  # too late: nobody will pump it
                if not late:
                    lane.client = client
            if late and client is not None and client.socket() is not None:
                client.socket().close()

        threads = [threading.Thread(target=connect, args=(lane,), name=f"cmd-{lane.section}", daemon=True)
                   for lane in self._lanes]
        for thread in threads:
            thread.start()
        deadline = self.clock.monotonic() + CONNECT_TIMEOUT_S + 1.0
        for thread, lane in zip(threads, self._lanes):
            thread.join(max(0.0, deadline - self.clock.monotonic()))
        with handover:
            done.set()
            for thread, lane in zip(threads, self._lanes):
                if thread.is_alive():
                    lane.error = lane.error or f"no answer within {CONNECT_TIMEOUT_S:g} s"

    def _statuses_in(self) -> bool:
        """A status is known, and every broker that granted the subscription had SETTLE_S to send its
        own; while the home looks offline, OFFLINE_SETTLE_S: a home on its other broker must not be
        taken to be offline because that broker's status came a moment later."""
        if self.status is None:
            return False
        now = self.clock.monotonic()
        settle = SETTLE_S if self.status.state == "online" else OFFLINE_SETTLE_S
        return all(lane.status is not None or (lane.subscribed_at is not None and now - lane.subscribed_at >= settle)
                   for lane in self._live())

    def __exit__(self, *exc) -> None:
        for lane in self._lanes:
            if lane.client is not None:
                lane.client.disconnect()
                mqttconn.pump(lane.client, [], 0.05)
            lane.close()

    def _live(self) -> list[_Lane]:
        return [lane for lane in self._lanes if lane.client is not None]

    def _on_connect(self, lane: _Lane, client, reason_code) -> None:
        if reason_code.is_failure:
            lane.error = f"the broker refused the session: {reason_code}"
            return
        client.subscribe([(topics.status(self.home.name), 1), (topics.up(self.home.name, "event"), 1),
                          (topics.lookin(self.home.name), 1)])

    def _pump(self, timeout: float) -> None:
        """One round over every live session: wait until any has something (or must write), then
        step each; a session that ended is closed and its broker left out from then on."""
        socks = [lane.client.socket() for lane in self._live()]
        busy = any(lane.client.want_write() or getattr(lane.client.socket(), "pending", lambda: 0)() > 0
                   for lane in self._live())
        try:
            select.select([s for s in socks if s is not None], [], [], 0.0 if busy else timeout)
        except (OSError, ValueError):
            pass
        for lane in self._live():
            ok, _ = mqttconn.pump(lane.client, [], 0.0)
            if not ok:
                lane.error = "lost the connection"
                lane.close()

    def _pump_until(self, done, timeout: float, failure: str, partial_ok: bool = False, step: float = 0.2) -> None:
        """partial_ok: when time is up, go on if some session got there (those that did not are dropped)."""
        deadline = self.clock.monotonic() + timeout
        while not done():
            if not self._live():
                raise NoAnswer(f"lost the connection to the broker while waiting ({failure})")
            left = deadline - self.clock.monotonic()
            if left <= 0:
                slow = [lane for lane in self._live() if lane.subscribed_at is None]
                if partial_ok and len(slow) < len(self._live()):
                    for lane in slow:
                        lane.error = failure
                        lane.close()
                    return
                raise NoAnswer(failure)
            self._pump(min(left, step))

    def _on_message(self, lane: _Lane, message) -> None:
        """Statuses and events of this home; anything that does not verify is ignored."""
        signer = self._home_signer
        try:
            if message.topic == topics.status(self.home.name):
                status = verify_status(message.payload, message.topic, self.home.name, signer)
                before, where = lane.status, self.home_section
                if before is None or status.time >= before.time:  # never back in time (the doctor's 1970 probe)
                    lane.status = status
                    self._choose_status()
                    if status.state == "online" and (where != lane.section or before is None or before.state != "online"):
                        self._follow(lane)
                return
            if message.topic == topics.lookin(self.home.name):
                self._picture(message)
                return
            opened = envelope.open_sealed(message.payload, message.topic, self.center_keys, signer)
            event = decode(opened.body, EventMessage)
        except (EnvelopeError, ValueError):
            return
        if event.home == self.home.name and event.kind == "command_result" and isinstance(event.body.get("command"), str):
            self._results.setdefault(event.body["command"], (event.body, lane.section))

    def _follow(self, lane: _Lane) -> None:
        """The home just came online on this broker, or moved here (its subscription is in place: it
        subscribes before it says so) while a command waits for its answer: publish it there again.
        A copy sent before it arrived went nowhere; one it did get is a replay it refuses."""
        pending = self._pending
        if pending is not None and pending[0] not in self._results and lane.client is not None \
                and lane.section == self.home_section:
            lane.client.publish(topics.command(self.home.name), pending[1], qos=1)
            self.resent += 1

    def _choose_status(self) -> None:
        """The home is where its freshest status is; on a tie the first broker's counts."""
        best = None
        for lane in self._lanes:
            if lane.status is not None and (best is None or lane.status.time > best.status.time):
                best = lane
        if best is not None:
            self.status, self.home_section = best.status, best.section

    def _picture(self, message) -> None:
        """A look-in picture for us: sealed to our key, signed by the home, answering our command.
        Without a staff key here (the web console) it is kept sealed, for the browser to open."""
        if self.staff is None:
            self.sealed_pictures.append(bytes(message.payload))
            return
        opened = envelope.open_sealed(message.payload, message.topic, [self.staff.kem], self._home_signer)
        picture = decode(opened.body, LookinMessage)
        if picture.home == self.home.name and picture.staff == self.staff.name:
            self._pictures[picture.command] = picture

    def _home_signer(self, kid: bytes):
        return self.home.sign if kid == envelope.signer_kid(self.home.sign) else None

    # -- commands -------------------------------------------------------------------------------
    def send(self, action: str, args: dict, timeout: float = 30.0, lifetime_s: float = 60.0) -> Answer:
        """Send one command and wait for its signed result; NoAnswer when none comes in time.

        If the device refuses it because its challenge changed meanwhile (another command used
        it, or the device restarted), read the new challenge and send a new command once.
        """
        try:
            args = command_args(action, args)  # built with the protocol's model of the action
        except ValueError as exc:
            raise TryggError(f"command not sent: {exc}") from None
        answer = self._send_once(action, args, timeout, lifetime_s)
        if answer.outcome == "refused" and _stale_challenge(answer.result):
            try:
                self.wait_for_new_challenge(answer.command.challenge)
            except NoAnswer:
                return answer  # the device did answer: refused, and no newer challenge to try
            answer = self._send_once(action, args, timeout, lifetime_s)
        return answer

    def _send_once(self, action: str, args: dict, timeout: float, lifetime_s: float) -> Answer:
        cmd = self.prepare(action, args, lifetime_s)
        topic = topics.command(self.home.name)
        return self.send_signed(cmd, envelope.sign(encode(cmd), topic, self.staff.sign), timeout)

    def wait_for_sealed_picture(self) -> None:
        """After a done look-in sent without a staff key: its sealed picture (or NoAnswer)."""
        self._pump_until(lambda: self.sealed_pictures, PICTURE_WAIT_S,
                         f"{self.home.name} reported the look-in done but its picture did not arrive")

    def prepare(self, action: str, args: dict, lifetime_s: float = 60.0) -> CommandMessage:
        """A command to this home, fresh by its current challenge; to be signed by the sender."""
        status = self.status
        if status.state != "online":
            raise NoAnswer(f"{self.home.name} is offline (since {status.time.isoformat(timespec='seconds')}); "
                           "command not sent")
        now = self.clock.now()
        return CommandMessage(id=new_id(int(now.timestamp() * 1000)), home=self.home.name, action=action, args=args,
                              issued=now, expires=now + timedelta(seconds=lifetime_s), challenge=status.challenge)

    def send_signed(self, cmd: CommandMessage, signed: bytes, timeout: float) -> Answer:
        """Seal a signed command to the home, publish it, wait for the device's signed result.
        The signature may come from elsewhere (a browser): only the device's verdict counts."""
        topic = topics.command(self.home.name)
        payload = envelope.seal_signed(signed, topic, self.home.kem)
        sent_at = self.clock.time()
        for lane in sorted(self._live(), key=lambda lane: lane.section != self.home_section):  # the home's first
            lane.client.publish(topic, payload, qos=1)
        self._pending = (cmd.id, payload)
        try:
            self._pump_until(lambda: cmd.id in self._results, timeout,
                             f"no answer from {self.home.name} within {timeout:.0f} s")
        finally:
            self._pending = None
        result, section = self._results.pop(cmd.id)
        return Answer(cmd, result, sent_at, self.clock.time(), self.status.clock_synced, via=section)

    def look_in(self, timeout: float = 30.0) -> tuple[Answer, LookinMessage | None]:
        """Ask for a look-in; the picture comes with a `done` answer, never with any other."""
        answer = self.send("lookin", {}, timeout=timeout)
        if answer.outcome != "done":
            return answer, None
        self._pump_until(lambda: answer.command.id in self._pictures, PICTURE_WAIT_S,
                         f"{self.home.name} reported the look-in done but its picture did not arrive")
        return answer, self._pictures.pop(answer.command.id)

    def wait_for_new_challenge(self, old: str | None, timeout: float = 2.0) -> None:
        """After a command used the challenge, the device publishes a new one; wait for it."""
        self._pump_until(lambda: self.status.challenge != old, timeout, "the home did not publish a new challenge")


CHALLENGE_CODES = ("not_fresh.challenge", "not_fresh.unsynced")  # protocol/refusals.py: a newer challenge may pass


def _stale_challenge(result: dict) -> bool:
    """Did the device refuse for want of its current challenge? By the verdict's code; a device
    from before codes only says so in its reason."""
    code = result.get("code")
    if isinstance(code, str):
        return code in CHALLENGE_CODES
    return "challenge" in str(result.get("reason", ""))

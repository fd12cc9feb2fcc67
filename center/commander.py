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
"""

import secrets
from dataclasses import dataclass
from datetime import timedelta

import paho.mqtt.client as mqtt

from base import mqttconn
from .config import CenterConfig
from base.errors import EnvelopeError, TryggError
from base.keys import Identity, PublicIdentity
from protocol.actions import command_args
from protocol.presence import verify_status
from protocol import envelope, topics
from protocol.ids import new_id
from protocol.kem import KemPrivate
from protocol.messages import CommandMessage, EventMessage, LookinMessage, StatusMessage, decode, encode

STATUS_WAIT_S = 3.0  # a retained status arrives right after the subscription is granted
PICTURE_WAIT_S = 10.0  # the picture is published before the result; this only covers reordering


class NoAnswer(TryggError, TimeoutError):
    """The home did not answer: offline, unknown, or too slow. Send someone."""


@dataclass
class Answer:
    command: CommandMessage
    result: dict  # the device's command_result body
    sent_at: float
    answered_at: float
    clock_synced: bool | None

    @property
    def outcome(self) -> str:
        return self.result.get("outcome", "")

    def to_json(self) -> dict:
        return {**self.result, "home": self.command.home, "sent": self.sent_at, "answered": self.answered_at,
                "round_trip_ms": round((self.answered_at - self.sent_at) * 1000, 2),
                "device_clock_synced": self.clock_synced}


class Commander:
    """One MQTT session at the center for commands; reusable for many commands to one home."""

    def __init__(self, cfg: CenterConfig, center_keys: list[KemPrivate], staff: Identity | None,
                 home: PublicIdentity, clock) -> None:
        self.cfg = cfg
        self.center_keys = center_keys
        self.staff = staff
        self.home = home
        self.clock = clock
        self.status: StatusMessage | None = None
        self._results: dict[str, dict] = {}
        self._pictures: dict[str, LookinMessage] = {}
        self.sealed_pictures: list[bytes] = []  # staff is None: pictures as they came, still sealed
        self._subscribed = False
        self._client: mqtt.Client | None = None

    # -- session --------------------------------------------------------------------------------
    def __enter__(self) -> "Commander":
        client = mqttconn.make_client(f"{self.cfg.center.name}-cmd-{secrets.token_hex(4)}", self.cfg.broker)
        client.on_connect = self._on_connect
        client.on_subscribe = lambda *a: setattr(self, "_subscribed", True)
        client.on_message = self._on_message
        try:
            mqttconn.connect(client, self.cfg.broker)
        except (OSError, ValueError) as exc:
            raise NoAnswer(f"cannot reach the broker {self.cfg.broker.host}:{self.cfg.broker.port}: {exc}") from None
        self._client = client
        self._pump_until(lambda: self._subscribed, STATUS_WAIT_S, "the broker did not grant the subscription")
        self._pump_until(lambda: self.status is not None, STATUS_WAIT_S,
                         f"no status from {self.home.name}: it has never connected, or its key is not enrolled here")
        return self

    def __exit__(self, *exc) -> None:
        if self._client is not None:
            self._client.disconnect()
            mqttconn.pump(self._client, [], 0.05)
            sock = self._client.socket()
            if sock is not None:
                sock.close()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not reason_code.is_failure:
            client.subscribe([(topics.status(self.home.name), 1), (topics.up(self.home.name, "event"), 1),
                              (topics.lookin(self.home.name), 1)])

    def _pump_until(self, done, timeout: float, failure: str) -> None:
        deadline = self.clock.monotonic() + timeout
        while not done():
            left = deadline - self.clock.monotonic()
            if left <= 0:
                raise NoAnswer(failure)
            ok, _ = mqttconn.pump(self._client, [], min(left, 0.2))
            if not ok:
                raise NoAnswer(f"lost the connection to the broker while waiting ({failure})")

    def _on_message(self, client, userdata, message) -> None:
        """Statuses and events of this home; anything that does not verify is ignored."""
        signer = self._home_signer
        try:
            if message.topic == topics.status(self.home.name):
                status = verify_status(message.payload, message.topic, self.home.name, signer)
                if self.status is None or status.time >= self.status.time:
                    self.status = status
                return
            if message.topic == topics.lookin(self.home.name):
                self._picture(message)
                return
            opened = envelope.open_sealed(message.payload, message.topic, self.center_keys, signer)
            event = decode(opened.body, EventMessage)
        except (EnvelopeError, ValueError):
            return
        if event.home == self.home.name and event.kind == "command_result" and isinstance(event.body.get("command"), str):
            self._results[event.body["command"]] = event.body

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
        self._client.publish(topic, payload, qos=1)
        self._pump_until(lambda: cmd.id in self._results, timeout,
                         f"no answer from {self.home.name} within {timeout:.0f} s")
        return Answer(cmd, self._results.pop(cmd.id), sent_at, self.clock.time(), self.status.clock_synced)

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

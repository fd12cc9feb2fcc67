"""Commands to a home from the console (unlock, lock, status, help-coming, look-in), signed in the
browser; unlock and look-in only with the person's passkey again (the step-up, signin.py).

prepare() builds the command (fresh by the home's current challenge) and hands the browser the
exact bytes to sign, and for unlock and look-in the passkey request that confirms exactly those
bytes. send() takes the body back with the signature (and the passkey's answer) and checks, in
this order:
1. the body is a command to this home, one of the console's actions;
2. it is signed by the signed-in member's enrolled browser key;
3. unlock and look-in: the member confirmed this very command with one of their passkeys, the
   device verifying the person (PIN or biometric), while the command is fresh, once
   (SignInDesk.step_up: refusals and step-ups go to the sign-in log);
and only then opens a session to the broker, seals the command to the home and waits for the
device's signed result. A refused command never reaches the broker.

The server never holds a staff key: it cannot make a command, only carry one (and the device
checks the signature, the role and the freshness again, and audits it). A look-in's picture is
sealed by the home to the member's browser key: it passes through here sealed, in memory only.
"""

import base64
from dataclasses import dataclass

from base.clock import SystemClock
from base.errors import EnvelopeError, TryggError
from base.keys import load_public
from protocol import envelope, topics
from protocol.actions import command_args
from protocol.messages import CommandMessage, decode, encode

from .. import keyring
from ..commander import Commander, NoAnswer
from .signin import RelyingParty, SignInDesk

WEB_ACTIONS = ("unlock", "lock", "status", "help_coming", "lookin")
STEP_UP_ACTIONS = ("unlock", "lookin")  # a door opened, a picture of a home: the person confirms again
STEP_UP_S = 60.0  # a step-up counts this long after the command was prepared (and never past its expiry)
SKEW_S = 5.0  # the console instance that prepared a command may keep a slightly different time
ANSWER_WAIT_S = 15.0


class CommandRefused(TryggError, ValueError):
    """Not sent: the request or its signature does not check out."""


def connect_home(cfg, home: str) -> Commander:
    """A session to the broker for commands to home (not yet open: use it as a context manager)."""
    try:
        path = keyring.enrolled_home(cfg, home)
    except TryggError as exc:
        raise CommandRefused(str(exc)) from None
    return Commander(cfg, keyring.opening_keys(cfg), None, load_public(path), SystemClock())


@dataclass(frozen=True)
class Caller:
    """Who sends a command, and from where: the signed-in member, the console as their browser
    reached it (the passkeys' relying party) and their address (for the sign-in log)."""
    member: str
    rp: RelyingParty
    client: str


class HomeCommands:
    def __init__(self, cfg, signin: SignInDesk, connect=connect_home) -> None:
        self.cfg = cfg
        self.signin = signin
        self.connect = connect  # (cfg, home) -> a Commander: the broker, injected for tests

    def prepare(self, caller: Caller, home: str, action: str, args: dict) -> dict:
        if action not in WEB_ACTIONS:
            raise CommandRefused(f"the console sends {', '.join(WEB_ACTIONS)}, not {action!r}")
        try:
            args = command_args(action, args)
        except ValueError as exc:
            raise CommandRefused(str(exc)) from None
        with self.connect(self.cfg, home) as commander:
            body = encode(commander.prepare(action, args))
        prepared = {"body": base64.b64encode(body).decode(),
                    "to_sign": base64.b64encode(envelope.signing_input(topics.command(home), body)).decode()}
        if action in STEP_UP_ACTIONS:
            prepared["step_up"] = {"publicKey": self.signin.step_up_options(caller.member, body, caller.rp, caller.client)}
        return prepared

    def send(self, caller: Caller, home: str, body_b64: str, signature_b64: str, passkey=None) -> dict:
        """Checks 1-3 (CommandRefused, or SignInRefused for the step-up), then the device's verdict."""
        member = caller.member
        try:
            body, signature = base64.b64decode(body_b64, validate=True), base64.b64decode(signature_b64, validate=True)
            cmd = decode(body, CommandMessage)
        except (ValueError, EnvelopeError) as exc:
            raise CommandRefused(f"not a command: {exc}") from None
        if cmd.home != home or cmd.action not in WEB_ACTIONS:
            raise CommandRefused("the signed command is for another home or action")
        public = keyring.staff_public(self.cfg, member)
        if public is None:
            raise CommandRefused(f"{member} is not enrolled")
        topic = topics.command(home)
        try:
            public.sign.verify(signature, envelope.signing_input(topic, body))
            signed = envelope.signed_message(public.sign, signature, body)
        except Exception:
            raise CommandRefused(f"the command is not signed by {member}'s enrolled key") from None
        if cmd.action in STEP_UP_ACTIONS:
            issued = cmd.issued.timestamp()
            self.signin.step_up(member, body, passkey, caller.rp, caller.client,
                                fresh=(issued - SKEW_S, min(cmd.expires.timestamp(), issued + STEP_UP_S)),
                                about={"home": home, "command": cmd.action, "command_id": cmd.id})
        return self._deliver(home, cmd, signed)

    def _deliver(self, home: str, cmd: CommandMessage, signed: bytes) -> dict:
        pictures: list[bytes] = []
        try:
            with self.connect(self.cfg, home) as commander:
                answer = commander.send_signed(cmd, signed, ANSWER_WAIT_S)
                if cmd.action == "lookin" and answer.outcome == "done":
                    commander.wait_for_sealed_picture()
                    pictures = commander.sealed_pictures  # sealed to the member's browser key: opened there only
                home_sign = commander.home.sign.public_bytes_raw()
        except NoAnswer as exc:
            return {"outcome": "no_answer", "reason": str(exc), "action": cmd.action}
        reply = {**answer.to_json(), "action": cmd.action}
        if pictures:
            reply.update(pictures=[base64.b64encode(p).decode() for p in pictures], topic=topics.lookin(home),
                         home_sign=base64.b64encode(home_sign).decode())
        return reply

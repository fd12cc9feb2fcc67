"""Commands to a home from the console (unlock, lock, help-coming, look-in), signed in the browser.

prepare() builds the command (fresh by the home's current challenge) and hands the browser the
exact bytes to sign; send() takes the body back with the signature, checks that the signed-in
member's enrolled key made it, seals it to the home and waits for the device's signed result.
The server never holds a staff key: it cannot make a command, only carry one (and the device
checks the signature, the role and the freshness again, and audits it). A look-in's picture is
sealed by the home to the member's browser key: it passes through here sealed, in memory only.
"""

import base64

from base.clock import SystemClock
from base.errors import EnvelopeError, TryggError
from base.keys import load_public
from protocol import envelope, topics
from protocol.actions import command_args
from protocol.messages import CommandMessage, decode, encode

from .. import keyring
from ..commander import Commander, NoAnswer

WEB_ACTIONS = ("unlock", "lock", "status", "help_coming", "lookin")
ANSWER_WAIT_S = 15.0


class CommandRefused(TryggError, ValueError):
    """Not sent: the request or its signature does not check out."""


def _commander(cfg, home: str) -> Commander:
    try:
        path = keyring.enrolled_home(cfg, home)
    except TryggError as exc:
        raise CommandRefused(str(exc)) from None
    return Commander(cfg, keyring.opening_keys(cfg), None, load_public(path), SystemClock())


def prepare(cfg, home: str, action: str, args: dict) -> dict:
    if action not in WEB_ACTIONS:
        raise CommandRefused(f"the console sends {', '.join(WEB_ACTIONS)}, not {action!r}")
    try:
        args = command_args(action, args)
    except ValueError as exc:
        raise CommandRefused(str(exc)) from None
    with _commander(cfg, home) as commander:
        body = encode(commander.prepare(action, args))
    return {"body": base64.b64encode(body).decode(),
            "to_sign": base64.b64encode(envelope.signing_input(topics.command(home), body)).decode()}


def send(cfg, member: str, home: str, body_b64: str, signature_b64: str) -> dict:
    try:
        body, signature = base64.b64decode(body_b64, validate=True), base64.b64decode(signature_b64, validate=True)
        cmd = decode(body, CommandMessage)
    except (ValueError, EnvelopeError) as exc:
        raise CommandRefused(f"not a command: {exc}") from None
    if cmd.home != home or cmd.action not in WEB_ACTIONS:
        raise CommandRefused("the signed command is for another home or action")
    public = keyring.staff_public(cfg, member)
    if public is None:
        raise CommandRefused(f"{member} is not enrolled")
    topic = topics.command(home)
    try:
        public.sign.verify(signature, envelope.signing_input(topic, body))
        signed = envelope.signed_message(public.sign, signature, body)
    except Exception:
        raise CommandRefused(f"the command is not signed by {member}'s enrolled key") from None
    pictures: list[bytes] = []
    try:
        with _commander(cfg, home) as commander:
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

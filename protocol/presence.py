"""Signed presence messages on the retained status topic: online (heartbeat) and offline (last will).

Presence carries no personal data, so it is signed but not sealed: the broker and operations
staff may read it, nobody can forge it. Shared by the uplink (which sends it) and the center
(which checks it), so both sides agree on one format.
"""

from cryptography.hazmat.primitives.asymmetric import ed25519

from . import envelope, topics
from .errors import MessageError
from .messages import StatusMessage, decode, encode


def signed_status(home: str, state: str, now, heartbeat_s: int, key: ed25519.Ed25519PrivateKey, **extra) -> bytes:
    """extra: clock_synced and challenge, for an online status (see commands.py)."""
    message = StatusMessage(home=home, state=state, time=now, heartbeat_s=heartbeat_s, **extra)
    return envelope.sign(encode(message), topics.status(home), key)


def verify_status(payload: bytes, topic: str, home: str, lookup) -> StatusMessage:
    """Verify a presence message for this home; raise EnvelopeError or MessageError otherwise
    (both ValueErrors, with a code)."""
    opened = envelope.verify(payload, topic, lookup)
    message = decode(opened.body, StatusMessage)
    if message.home != home:
        raise MessageError(f"status for {message.home!r} published on {home!r}'s topic", code="wrong_home",
                           where="home")
    return message

"""Opening what homes send: the envelope (sealed to the center key, signed by the home's key),
the event inside it, and an audit entry's sealed detail.

Used by the receiver as messages arrive and by views as they show recorded events (the store
keeps each envelope as received, so a view opens it again with the same checks). During a key
rotation the center's keys are re-read when an envelope is sealed to a key we do not hold yet,
at most every few seconds, so hostile messages cannot make us re-read them constantly.
"""

import logging
from typing import Callable

from base.auditdetail import open_detail
from base.errors import EnvelopeError, MessageError, TryggError
from protocol import envelope, topics
from protocol.kem import KemPrivate
from protocol.messages import EventMessage, decode

from .homes import HomeRegistry

log = logging.getLogger(__name__)
RELOAD_EVERY_S = 5.0


class Opener:
    def __init__(self, homes: HomeRegistry, opening: list[KemPrivate],
                 load_opening: Callable[[], list[KemPrivate]] | None, clock) -> None:
        self.homes = homes
        self.opening = opening
        self._load_opening = load_opening
        self._loaded_at = -1e9
        self.clock = clock

    def open_event(self, payload: bytes, topic: str, where: topics.Topic | None = None,
                   open_audit: bool = True) -> EventMessage:
        """The event, verified to come from the home whose topic it arrived on; EnvelopeError or
        ValueError (with the reason) for anything else. open_audit=False keeps an audit entry's
        detail sealed, as forwarded (its hash covers the sealed bytes: auditchain.py)."""
        where = where or topics.parse(topic)
        try:
            opened = envelope.open_sealed(payload, topic, self.opening, self.homes.signer_for(where.home))
        except EnvelopeError as exc:
            if not (exc.code == "unknown_recipient" and self.reload()):  # a rotation's new key, perhaps
                raise
            opened = envelope.open_sealed(payload, topic, self.opening, self.homes.signer_for(where.home))
        event = decode(opened.body, EventMessage)
        if event.home != where.home or event.cls != where.cls:
            raise MessageError(f"event for {event.home}/{event.cls} arrived on {topic}",
                               code="wrong_home" if event.home != where.home else "wrong_class")
        if open_audit and event.kind == "audit" and event.body.get("sealed"):
            event = self._open_audit(event)
        return event

    def _open_audit(self, event: EventMessage) -> EventMessage:
        """The audit entry with its sealed detail opened (or, if it will not open, marked so)."""
        body = dict(event.body)
        try:
            try:
                detail = open_detail(body, event.home, self.opening)
            except TryggError:
                if not self.reload():
                    raise
                detail = open_detail(body, event.home, self.opening)
        except (TryggError, ValueError, KeyError, TypeError) as exc:
            log.warning("audit entry %s of %s: detail does not open: %s", body.get("seq"), event.home, exc)
            return event.model_copy(update={"body": {**body, "sealed": True, "unopened": str(exc)}})
        body.pop("sealed", None)
        return event.model_copy(update={"body": {**body, "detail": detail}})

    def reload(self) -> bool:
        """Read the center's keys again (a rotation began while we run); True when they changed."""
        now = self.clock.monotonic()
        if self._load_opening is None or now - self._loaded_at < RELOAD_EVERY_S:
            return False
        self._loaded_at = now
        try:
            keys = self._load_opening()
        except TryggError as exc:
            log.error("cannot re-read the center keys: %s", exc)
            return False
        changed = {(k.suite_id, k.public.kid) for k in keys} != {(k.suite_id, k.public.kid) for k in self.opening}
        self.opening = keys
        return changed

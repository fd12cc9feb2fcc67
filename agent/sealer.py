"""Seal before store: turn a driver's event into a signed, sealed outbox row.

Stamps the event with a time-ordered id, the home id, the time and the clock's trust flag,
signs it with the device key and seals it to the care center (envelope.py). Only the sealed
bytes ever reach the outbox, so the SD card never holds plaintext health data.
"""

from protocol.events import Event
from base.keys import Identity
from .outbox import Row
from protocol import envelope, topics
from protocol.ids import new_id
from protocol.kem import KemPublic
from protocol.messages import EventMessage, encode


class Sealer:
    """Turns events into sealed outbox rows for one home."""

    def __init__(self, home: str, device: Identity, center: KemPublic, clock) -> None:
        self.home = home
        self.device = device
        self.center = center
        self.clock = clock

    def seal(self, event: Event) -> tuple[EventMessage, Row]:
        now = self.clock.now()
        message = EventMessage(
            id=new_id(int(now.timestamp() * 1000)),
            home=self.home,
            cls=event.cls,
            kind=event.kind,
            time=now,
            clock_synced=self.clock.synced(),
            body=event.body,
        )
        topic = topics.up(self.home, event.cls)
        payload = envelope.seal(encode(message), topic, self.device.sign, self.center)
        return message, Row(message.id, event.cls, topic, payload, now.timestamp())

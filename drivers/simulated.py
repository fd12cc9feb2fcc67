"""A simulated home for demos and tests: a plausible mix of alarms, events and telemetry.

Stands in for the real device drivers until they exist; it goes through exactly the same
emit path a real driver does, so everything downstream is the real code.
"""

import random

from agent.events import Emit, Event

from .base import Driver

# (class, kind, weight, body maker) - mostly quiet telemetry, now and then something urgent
_SCENES = [
    ("telemetry", "room_climate", 60, lambda r: {"temp_c": round(r.uniform(19, 24), 1), "humidity": r.randint(25, 55)}),
    ("event", "door_open", 15, lambda r: {"door": "front", "by": "resident"}),
    ("event", "dose_taken", 10, lambda r: {"dose": r.choice(["08:00", "13:00", "20:00"])}),
    ("alarm", "fall", 8, lambda r: {"mat": "bedroom", "pressure_s": r.randint(10, 40)}),
    ("alarm", "help", 7, lambda r: {"button": "wrist"}),
]


class SimulatedHome(Driver):
    name = "simulated"

    def __init__(self, emit: Emit, every_s: float, rand: random.Random | None = None) -> None:
        super().__init__(emit)
        self.every_s = every_s
        self.rand = rand or random.Random()

    def next_event(self) -> Event:
        cls, kind, _, body = self.rand.choices(_SCENES, weights=[s[2] for s in _SCENES])[0]
        return Event(cls, kind, body(self.rand))

    def run(self) -> None:
        while not self.wait(self.every_s):
            self.emit(self.next_event())


class SimulatedLock:
    """Stands in for the door-lock driver (its own issue): records each action, always succeeds."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.state = "locked"
        self.actions: list[str] = []

    def unlock(self) -> dict:
        return self._set("unlocked")

    def lock(self) -> dict:
        return self._set("locked")

    def _set(self, state: str) -> dict:
        self.state = state
        self.actions.append(state)
        return {"state": state, "simulated": True}

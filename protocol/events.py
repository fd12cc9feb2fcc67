"""Events as drivers produce them: a class, a kind and a body; nothing else.

Drivers import only this module from the agent, so it imports no crypto, storage or network
code. Ids, times, signing and sealing are added by the agent (sealer.py). Also the one list of
the kinds the drivers send per class (DRIVER_KINDS): `trygg simulate` may send only those, or
`test`, so a simulated event always looks like something a real device sends.
"""

import re
from dataclasses import dataclass, field
from typing import Any, Callable

# Most important first. Test traffic (installation checks, periodic test alarms) is its own class,
# last: it never rides the alarm lane, so a flood of tests cannot delay a real fall anywhere.
CLASSES = ("alarm", "event", "telemetry", "test")
KIND_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
_KIND_RE = re.compile(KIND_PATTERN)

# What the drivers (drivers/*.py) send, per class: the one registry of kinds. A driver that sends
# a new kind adds it here; tests/test_simulated_alarms.py reads every driver's emit calls and
# fails when this list and the drivers disagree. door_open is an alarm at night, an event by day.
DRIVER_KINDS: dict[str, tuple[str, ...]] = {
    "alarm": ("bed_exit", "door_open", "dose_missed", "fall", "help", "inactivity"),
    "event": ("activity_resumed", "almost_empty", "bed_return", "dispenser_empty", "dispenser_jam",
              "dispenser_refilled", "door_closed", "door_open", "dose_taken", "fault", "fault_cleared",
              "help_cancelled", "lock_fault", "manual_unlock", "mat_clear", "visit"),
    "telemetry": ("activity_summary", "device_health", "dose_summary"),
}
TEST_KIND = "test"  # an installation check: `trygg simulate CLASS --kind test`, sent as class test


def simulate_kinds(cls: str) -> tuple[str, ...]:
    """The kinds `trygg simulate` may send as this class: a driver's kinds, then `test`."""
    return (*DRIVER_KINDS[cls], TEST_KIND)


def test_event(tests: str) -> "Event":
    """A test of the path a `tests`-class event takes: class and kind test, so it travels last."""
    return Event("test", TEST_KIND, {"simulated": True, "tests": tests})


@dataclass(frozen=True)
class Event:
    """What a driver emits: no ids, no crypto, no transport."""

    cls: str
    kind: str
    body: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.cls not in CLASSES:
            raise ValueError(f"class must be one of {', '.join(CLASSES)}, got {self.cls!r}")
        if not isinstance(self.kind, str) or not _KIND_RE.fullmatch(self.kind):
            raise ValueError(f"kind must be 1-40 characters a-z, 0-9 and '_', starting with a letter, got {self.kind!r}")
        if (self.cls == "test") != (self.kind == TEST_KIND):
            raise ValueError(f"kind {TEST_KIND!r} is sent as class 'test' and only it is, got {self.cls}/{self.kind}")


Emit = Callable[[Event], Any]

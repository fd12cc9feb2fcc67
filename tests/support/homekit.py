"""A simulated home for driver tests: the real drivers on gpiozero MockFactory pins, a SimWorld for
the physical side (bolts follow relays, inputs set by their words) and a FakeClock the test moves.

Nothing sleeps: `Home.run(seconds)` plays the drivers' runner loop on the fake clock (poll, then
wait until the driver's next due time or IDLE_S, whichever first), so simulated hours take
milliseconds. Every pin change must be followed by a poll, as the runner does on each edge;
`Home.set` does that and, by default, lets the debounce settle.
"""

import copy
import threading
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from gpiozero.pins.mock import MockFactory

from agent.config import DeviceConfig
from agent.devices import build
from protocol.events import Event
from agent.provision import SIMULATED_HOME
from drivers.base import IDLE_S, Driver
from drivers.simworld import SimWorld
from tests.support.fakes import FakeClock

ZONE = ZoneInfo("Europe/Stockholm")
WALL = datetime(2026, 11, 24, 21, 0, tzinfo=timezone.utc)  # Tuesday 22:00 in Stockholm (UTC+1 in November)
BROKER = {"host": "broker.example", "ca": "ca.pem", "cert": "cert.pem", "key": "key.pem"}
MIN_STEP_S = 0.001  # never wait less than this in Home.run (float due times may sit an ulp ahead)


def local(hhmm: str, day: int = 24) -> datetime:
    """A Stockholm local time on 2026-11-`day` as the UTC wall clock the FakeClock keeps."""
    parts = [int(p) for p in hhmm.split(":")]
    hour, minute, second = (parts + [0, 0])[:3]
    return datetime(2026, 11, day, hour, minute, second, tzinfo=ZONE).astimezone(timezone.utc)


def merge(base: dict, extra: dict) -> dict:
    """Deep-merge `extra` into a copy of `base` (dicts merge, everything else replaces)."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def home_data(overrides: dict | None = None) -> dict:
    """The raw config of the simulated home (one of every device), with `overrides` deep-merged."""
    data = {"home": {"id": "h1"}, "broker": dict(BROKER), **copy.deepcopy(SIMULATED_HOME)}
    return merge(data, overrides or {})


def home_config(overrides: dict | None = None) -> DeviceConfig:
    return DeviceConfig.model_validate(home_data(overrides))


class Recorder:
    """The emit callable: keeps every event the drivers hand over."""

    def __init__(self, fail: bool = False) -> None:
        self.events: list[Event] = []
        self.fail = fail
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> bool:
        with self._lock:
            self.events.append(event)
        if self.fail:
            raise OSError("disk full")
        return True

    def kinds(self, cls: str | None = None) -> list[str]:
        with self._lock:
            return [e.kind for e in self.events if cls is None or e.cls == cls]

    def of(self, kind: str, cls: str | None = None) -> list[Event]:
        with self._lock:
            return [e for e in self.events if e.kind == kind and (cls is None or e.cls == cls)]

    def one(self, kind: str, cls: str | None = None) -> Event:
        found = self.of(kind, cls)
        assert len(found) == 1, f"expected one {kind} event, got {len(found)}: {self.events}"
        return found[0]

    def alarms(self) -> list[str]:
        return self.kinds("alarm")

    def clear(self) -> None:
        with self._lock:
            self.events.clear()


class Home:
    """The simulated home: config, fake clock, recorder, mock pins, SimWorld and built drivers."""

    def __init__(self, data_dir: Path, *, start: datetime = WALL, synced: bool = True, trust=None,
                 overrides: dict | None = None, cfg: DeviceConfig | None = None, factory=None, world=None,
                 clock: FakeClock | None = None, events: Recorder | None = None) -> None:
        self.cfg = cfg or home_config(overrides)
        self.clock = clock or FakeClock(start, synced=synced)
        self.events = events or Recorder()
        self.factory = factory or MockFactory()
        self.world = world or SimWorld(self.factory, self.cfg)
        self.data_dir = data_dir
        self.devices = build(self.cfg, self.events, self.clock, trust, self.factory,
                             after_open=self.world.after_open, data_dir=data_dir)
        self.opened: list[Driver] = []
        self.past_due = 0  # polls that returned a due time already past (a busy loop in the real runner)

    def driver(self, name: str) -> Driver:
        return self.devices.named(name)

    def open(self, name: str, poll: bool = True) -> Driver:
        """Open a driver (its pins get the world's levels) and take its first reading."""
        driver = self.devices.named(name)
        driver.open()
        self.opened.append(driver)
        if poll:
            driver.poll()
        return driver

    def close(self, driver: Driver | None = None) -> None:
        for d in ([driver] if driver else list(self.opened)):
            if d in self.opened:
                self.opened.remove(d)
                d.close()

    def poll(self) -> float | None:
        due = [d.poll() for d in self.opened]
        due = [x for x in due if x is not None]
        return min(due) if due else None

    def set(self, device: str, name: str, word: str, settle: bool = True) -> None:
        """Change an input physically, poll at once (as an edge does), and let the debounce pass."""
        self.world.set(device, name, word)
        self.poll()
        if settle:
            self.run(self.driver(device).inputs[name].debounce_s + MIN_STEP_S)

    def run(self, seconds: float) -> None:
        """Let `seconds` pass as the runner would: poll, wait for the next due time (at most IDLE_S)."""
        end = self.clock.monotonic() + seconds
        while True:
            due = self.poll()
            now = self.clock.monotonic()
            left = end - now
            if left <= 1e-9:
                return
            if due is not None and due < now - 1e-6:
                self.past_due += 1  # the real runner would spin here (wait 0); see the floor mat test
                due = None
            wait = IDLE_S if due is None else min(max(due - now, 0.0), IDLE_S)
            self.clock.advance(min(max(wait, MIN_STEP_S), left))

    def run_until(self, when: datetime) -> None:
        """Run until the wall clock reads `when` (UTC, see local())."""
        seconds = (when - self.clock.now()).total_seconds()
        assert seconds >= 0, f"{when} is in the past (now {self.clock.now()})"
        self.run(seconds)

    def local_now(self) -> datetime:
        return self.clock.now().astimezone(ZONE)


@pytest.fixture
def make_home(tmp_path):
    """Build simulated homes (Home(...) keyword arguments); all opened drivers close at the end."""
    homes: list[Home] = []

    def make(**kw) -> Home:
        home = Home(tmp_path, **kw)
        homes.append(home)
        return home

    yield make
    for home in homes:
        home.close()


def assert_not_spinning(home, driver) -> None:
    """The driver's next due time is in the future: its runner would wait, not spin."""
    due = driver.poll()
    assert due is None or due > home.clock.monotonic(), \
        f"poll() asks to be called again at {due}, before now ({home.clock.monotonic()})"
    assert home.past_due == 0

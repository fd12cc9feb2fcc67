"""Debounced inputs (drivers/contact.py through Driver.input): the stable state follows the pin only
after it held a new level for debounce_s on the injected clock, and `active` means the named
condition whatever the electrical level, for every pull / active-level combination."""

from datetime import datetime, timezone

import pytest
from gpiozero.pins.mock import MockFactory

from drivers.wiring import InputWiring
from drivers.base import Driver
from tests.support.fakes import FakeClock
from tests.support.homekit import make_home  # noqa: F401 - fixture

PIN = 20


class Probe(Driver):
    """The smallest driver with one debounced input, to watch Contact through Driver.input."""

    kind = "probe"
    INPUTS = {"x": ("active", "inactive")}

    def __init__(self, wiring: InputWiring, debounce_s: float, clock, factory) -> None:
        super().__init__("p", lambda event: True, clock, pin_factory=factory)
        self.wiring, self.debounce_s = wiring, debounce_s
        self.changes: list[tuple[float, bool]] = []

    def setup(self) -> None:
        self.x = self.input("x", self.wiring, self.debounce_s)

    def step(self, now: float) -> float | None:
        if self.x.update(now):
            self.changes.append((now, self.x.stable))
        return self.x.due()


@pytest.fixture
def clock():
    return FakeClock(datetime(2026, 11, 24, 21, 0, tzinfo=timezone.utc))


@pytest.fixture
def probe(clock):
    made = []

    def make(pull="up", active="default", debounce_s=0.05):
        driver = Probe(InputWiring(pin=PIN, pull=pull, active=active), debounce_s, clock, MockFactory())
        driver.open()
        made.append(driver)
        return driver

    yield make
    for driver in made:
        driver.close()


def drive(driver: Probe, high: bool) -> None:
    pin = driver.x.device.pin
    pin.drive_high() if high else pin.drive_low()
    driver.poll()  # the runner polls on every edge


def test_first_reading_is_taken_at_once_without_waiting_for_the_debounce(probe, clock):
    p = probe(debounce_s=5.0)
    assert p.x.stable is None and p.health()["inputs"] == {"x": None}
    p.poll()
    assert p.x.stable is False
    assert p.changes == [(clock.monotonic(), False)]
    assert p.health()["inputs"] == {"x": "inactive"}


def test_bounce_shorter_than_debounce_changes_nothing(probe, clock):
    p = probe(debounce_s=0.05)
    p.poll()
    drive(p, high=False)  # contact closes (pull-up: active low) ...
    clock.advance(0.03)
    p.poll()
    drive(p, high=True)  # ... and bounces open again before 50 ms
    clock.advance(1.0)
    p.poll()
    assert p.x.stable is False
    assert p.changes == [(1000.0, False)], "a 30 ms bounce must not change the stable state"
    assert p.x.due() is None


def test_level_held_for_debounce_becomes_stable_dated_from_its_first_edge(probe, clock):
    p = probe(debounce_s=0.5)  # binary-exact times, so the boundary itself is tested
    p.poll()
    clock.advance(2.0)
    drive(p, high=False)
    edge = clock.monotonic()
    assert p.x.due() == edge + 0.5
    clock.advance(0.375)
    p.poll()
    assert p.x.stable is False, "settled before the debounce time"
    clock.advance(0.125)
    p.poll()
    assert p.x.stable is True, "held exactly debounce_s: settled"
    assert p.x.since == edge, "the stable state begins at the edge, not at its settling"
    assert p.x.due() is None


def test_a_bounce_restarts_the_debounce_from_the_latest_edge(probe, clock):
    p = probe(debounce_s=0.5)
    p.poll()
    drive(p, high=False)
    clock.advance(0.25)
    drive(p, high=True)  # bounce back
    clock.advance(0.125)
    drive(p, high=False)  # and closed again: 0.5 s count from here
    last_edge = clock.monotonic()
    clock.advance(0.25)
    p.poll()
    assert p.x.stable is False, "the first edge's time must not count after a bounce"
    clock.advance(0.25)
    p.poll()
    assert p.x.stable is True
    assert p.x.since == last_edge


def test_debounce_counts_on_the_injected_clock_not_real_time(probe, clock):
    p = probe(debounce_s=30.0)  # half a minute of simulated time, no real waiting
    p.poll()
    drive(p, high=False)
    clock.advance(29.9)
    p.poll()
    assert p.x.stable is False
    clock.advance(0.1)
    p.poll()
    assert p.x.stable is True


# (pull, active, word with nothing driving the pin beyond its pull, pin level that means active)
LEVELS = [
    ("up", "default", "inactive", False),  # contact to ground: closed pulls the pin low
    ("up", "low", "inactive", False),
    ("up", "high", "active", True),  # pull-up with an active-high sensor: the reading is inverted
    ("down", "default", "inactive", True),  # contact to 3V3: closed pulls the pin high
    ("down", "high", "inactive", True),
    ("down", "low", "active", False),
    ("none", "high", None, True),  # external pull: the level is whatever the sensor drives
    ("none", "low", None, False),
]


@pytest.mark.parametrize("pull, active, idle_word, active_level", LEVELS,
                         ids=[f"pull_{p}-active_{a}" for p, a, _, _ in LEVELS])
def test_active_means_the_configured_level_for_every_pull(probe, clock, pull, active, idle_word, active_level):
    p = probe(pull=pull, active=active, debounce_s=0.5)
    p.poll()
    if idle_word is not None:
        assert p.x.word(Probe.INPUTS["x"]) == idle_word
    drive(p, high=active_level)
    clock.advance(0.5)
    p.poll()
    assert p.x.stable is True, f"pin {'high' if active_level else 'low'} must read active"
    assert p.health()["inputs"]["x"] == "active"
    drive(p, high=not active_level)
    clock.advance(0.5)
    p.poll()
    assert p.x.stable is False
    assert p.health()["inputs"]["x"] == "inactive"


BUTTON_WIRINGS = [
    ({"pin": 16}, False),  # pull up, active low (the default)
    ({"pin": 16, "pull": "down"}, True),
    ({"pin": 16, "pull": "none", "active": "high"}, True),
    ({"pin": 16, "pull": "none", "active": "low"}, False),
    ({"pin": 16, "pull": "up", "active": "high"}, True),
]


@pytest.mark.parametrize("wiring, pressed_high", BUTTON_WIRINGS,
                         ids=["pull_up", "pull_down", "pull_none_active_high", "pull_none_active_low",
                              "pull_up_active_high"])
def test_alarm_button_raises_help_when_its_pin_goes_to_the_active_level(make_home, wiring, pressed_high):
    home = make_home(overrides={"buttons": {"wrist": {"input": wiring}}})
    button = home.open("wrist", poll=False)
    pin = button.inputs["button"].device.pin
    # released: the opposite level (for pull none nothing holds it, so the test sets it)
    pin.drive_low() if pressed_high else pin.drive_high()
    button.poll()
    assert button.health()["inputs"]["button"] == "released"
    pin.drive_high() if pressed_high else pin.drive_low()
    home.run(0.1)
    assert home.events.alarms() == ["help"]
    assert button.health()["inputs"]["button"] == "pressed"

"""The physical side of a simulated home on gpiozero's MockFactory pins.

A lock's bolt follows its relay, as a working lock does (gpiozero's MockConnectedPin), unless
the scenario jams it. Inputs keep their physical state (door closed, mat cable connected)
across a driver's restart, because a mock pin forgets its level when it is opened again.
Used by `trygg run --simulate`, `make demo` and tests; never on real pins.
"""

from gpiozero.pins.mock import MockConnectedPin

from .base import Driver
from .registry import kinds


class SimWorld:
    def __init__(self, factory, cfg) -> None:
        self.factory = factory
        self.physical: dict[tuple[str, str], bool] = {}
        self.relays = {}  # device -> (output pin, the input pin that follows it)
        for kind in kinds().values():  # what each registered kind says of its world (Driver.RESTING, LINKED)
            for name, conf in getattr(cfg, kind.section).items():
                if kind.driver.LINKED:
                    output, follower = kind.driver.LINKED
                    pin = factory.pin(getattr(conf, follower).pin)
                    self.relays[name] = (factory.pin(getattr(conf, output).pin, pin_class=MockConnectedPin,
                                                     input_pin=pin), pin)
                for input_name, active in kind.driver.RESTING.items():
                    self.physical[(name, input_name)] = active
        self.drivers: dict[str, Driver] = {}

    def after_open(self, driver: Driver) -> None:
        """Give a freshly opened driver's mock pins the levels the world has."""
        self.drivers[driver.name] = driver
        for (device, name), active in self.physical.items():
            if device == driver.name and name in driver.inputs:
                self._drive(driver, name, active)

    def set(self, device: str, name: str, word: str) -> None:
        """Make an input of a device `word` (one of its two words, e.g. pressed / released)."""
        driver = self.drivers.get(device)
        if driver is None or name not in driver.INPUTS:
            raise KeyError(f"no input {device}.{name}")
        words = driver.INPUTS[name]
        if word not in words:
            raise ValueError(f"{device}.{name} is {words[0]} or {words[1]}, not {word!r}")
        self.physical[(device, name)] = word == words[0]
        self._drive(driver, name, word == words[0])

    def jam(self, lock: str, jammed: bool = True) -> None:
        """A jammed bolt no longer follows its relay."""
        relay, bolt = self.relays[lock]
        relay.input_pin = None if jammed else bolt

    def _drive(self, driver: Driver, name: str, active: bool) -> None:
        contact = driver.inputs[name]
        high = active == contact.wiring.active_high
        contact.device.pin.drive_high() if high else contact.device.pin.drive_low()

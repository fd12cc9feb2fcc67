"""Builds the home's drivers from the config: one driver per configured device, all sharing the
emit path, the clock, the time zone and one pin factory (the Pi's pins, or gpiozero's
MockFactory for simulation and tests). Also gives drivers somewhere to keep the little state
they must not forget over a restart (doses left, today's counts), in trust.db.

That state is about the resident (when they moved, which doses were taken), so DriverState
keeps readable only the fields a driver names in PLAIN_STATE (a dispenser's doses left, the
day); the rest is sealed to this device's own key (trustdb.AtRest) and opened when the driver
starts again. Not to the center's key: the device itself must read it back after a restart to
finish the day's summary and not dispense a dose twice. Drivers keep only today's counts and
the doses still in a window; older history was sent to the center and is dropped.
"""

import base64
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from drivers import scenario as scenarios
from drivers.base import Driver
from drivers.health import DeviceHealth
from drivers.registry import kinds

from protocol.events import Event

from .config import DeviceConfig
from base.errors import ConfigError
from .trustdb import TrustDB

log = logging.getLogger(__name__)


class DriverState:
    """A driver's small persistent state: one JSON document in trust.db's settings, its fields
    outside `plain` sealed to the device's own key under "sealed" (plain JSON without AtRest,
    and as older versions wrote it: both are read)."""

    def __init__(self, trust: TrustDB, key: str, plain: tuple[str, ...] = ()) -> None:
        self.trust, self.key, self.plain = trust, f"driver:{key}", frozenset(plain)

    def load(self) -> dict:
        try:
            value = json.loads(self.trust.setting(self.key) or "{}")
            if not isinstance(value, dict):
                return {}
            sealed = value.pop("sealed", None)
            if sealed is not None and self.trust.at_rest is not None:
                value.update(json.loads(self.trust.at_rest.open_device(self.key, base64.b64decode(sealed))))
        except (ValueError, TypeError):
            return {}  # a damaged state is forgotten, not fatal: counts restart
        return value

    def save(self, value: dict) -> None:
        at_rest = self.trust.at_rest
        if at_rest is not None:
            private = {k: v for k, v in value.items() if k not in self.plain}
            value = {k: v for k, v in value.items() if k in self.plain}
            if private:
                sealed = at_rest.for_device(self.key, json.dumps(private, sort_keys=True).encode())
                value["sealed"] = base64.b64encode(sealed).decode()
        with self.trust.write() as conn:
            TrustDB.put_setting(conn, self.key, json.dumps(value, sort_keys=True))


def pin_factory(kind: str):
    """The Pi's pins (gpiozero's default), or a MockFactory for simulation and tests."""
    if kind == "mock":
        from gpiozero.pins.mock import MockFactory

        return MockFactory()
    return None


def pwm_factory(factory):
    """The factory for a PWM device (the camera servo): mock pins that can do PWM when mocking."""
    from gpiozero.pins.mock import MockFactory, MockPWMPin

    return MockFactory(pin_class=MockPWMPin) if isinstance(factory, MockFactory) else factory


@dataclass
class Devices:
    drivers: list[Driver] = field(default_factory=list)

    def named(self, name: str) -> Driver:
        for driver in self.drivers:
            if driver.name == name:
                return driver
        known = ", ".join(d.name for d in self.drivers) or "none configured"
        raise KeyError(f"no device named {name!r} in this home (known: {known})")

    def of_kind(self, kind: str) -> dict[str, Driver]:
        return {d.name: d for d in self.drivers if d.kind == kind}


def build(cfg: DeviceConfig, emit, clock, trust: TrustDB | None, factory, after_open=None,
          data_dir: Path | None = None, health: tuple | None = None) -> Devices:
    """One driver per configured device, not yet opened; with `health` = (emit, clock) also the
    device-health driver (it reports on the real machine, so never on a simulated clock)."""
    common = {"pin_factory": factory, "zone": ZoneInfo(cfg.home.timezone), "after_open": after_open,
              "restart": (cfg.gpio.restart_min_s, cfg.gpio.restart_max_s)}

    def state(driver: type, name: str):
        if trust is None:
            return MemoryState()
        return DriverState(trust, f"{driver.kind}:{name}", driver.PLAIN_STATE)

    drivers: list[Driver] = []
    for kind in kinds().values():  # every registered driver kind, one driver per configured device
        for name, conf in getattr(cfg, kind.section).items():
            extra = (state(kind.driver, name),) if kind.stateful else ()
            drivers.append(kind.driver(name, conf, emit, clock, *extra, **common))
    if health:
        drivers.append(DeviceHealth("device", cfg.health, *health, data_dir or cfg.outbox.path.parent, **common))
    return Devices(drivers)


class MemoryState:
    """State kept only in memory: for `trygg test`, which must not touch the daemon's counts."""

    def __init__(self) -> None:
        self.value: dict = {}

    def load(self) -> dict:
        return json.loads(json.dumps(self.value))  # a copy all the way down, as a stored one would be

    def save(self, value: dict) -> None:
        self.value = json.loads(json.dumps(value))


class HomeDevices:
    """The daemon's drivers: built from the config, started after the uplink, stopped before it.

    With [simulate] enabled every driver is on mock pins in a SimWorld and sees the scenario's
    faster clock; every event it emits is marked simulated, with the simulated local time, and
    goes through `inject` (the daemon's path that authorizes nothing) instead of `emit`: a
    scenario is a script, not a sensor, so its alarms never open a door.
    """

    def __init__(self, cfg: DeviceConfig, emit, clock, trust: TrustDB, *, inject) -> None:
        self.player = None
        zone = ZoneInfo(cfg.home.timezone)
        health = (emit, clock)
        simulate = cfg.simulate.enabled
        factory = self.factory = pin_factory("mock" if simulate else cfg.gpio.pins)
        world = None
        if factory is not None:
            from drivers.simworld import SimWorld

            world = SimWorld(factory, cfg)
        if simulate:
            try:
                scenario = scenarios.load(cfg.simulate.scenario)
            except scenarios.ScenarioError as exc:
                raise ConfigError(str(exc)) from None
            clock = scenarios.ScaledClock(scenarios.start_at(scenario, zone), cfg.simulate.speed or scenario.speed or 900.0)
            emit = _marked_simulated(inject, clock, zone)
        self.devices = build(cfg, emit, clock, trust, factory, after_open=world and world.after_open, health=health)
        if simulate:
            try:
                scenarios.check(scenario, {d.name: d.INPUTS for d in self.devices.drivers if d.INPUTS},
                                set(self.devices.of_kind("lock")))
            except scenarios.ScenarioError as exc:
                raise ConfigError(str(exc)) from None
            self.player = scenarios.Player(scenario, world, clock, zone, cfg.simulate.repeat, self.wake_all)

    def of_kind(self, kind: str) -> dict[str, Driver]:
        return self.devices.of_kind(kind)

    def start(self) -> None:
        """Open every driver now (so a lock can act on the first command), then run each on its
        thread; a driver that cannot open is retried and reported by its own thread."""
        for driver in self.devices.drivers:
            try:
                driver.open()
            except Exception:
                log.debug("driver %s could not open; its thread retries and reports it", driver.component)
            driver.start()
        if self.player:
            self.player.start()

    def stop(self) -> None:
        if self.player:
            self.player.stop()
        for driver in reversed(self.devices.drivers):
            driver.stop()

    def wake_all(self) -> None:
        for driver in self.devices.drivers:
            driver.wake()

    def health(self) -> dict:
        return {d.name: d.health() for d in self.devices.drivers}


def _marked_simulated(inject, clock, zone):
    """A simulated event must never be mistaken for a real one; it also says when it happened
    in the scenario, since its own time is the real one. It is committed through `inject`, which
    never authorizes anything; the driver is told only whether it was accepted."""
    def marked(event: Event) -> bool:
        sim_time = clock.now().astimezone(zone).isoformat(timespec="seconds")
        return inject(Event(event.cls, event.kind, {**event.body, "simulated": True, "sim_time": sim_time}))[1]
    return marked

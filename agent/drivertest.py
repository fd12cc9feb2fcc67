"""`trygg test DEVICE`: check one device's wiring at installation, pin by pin.

Opens only that device with its real driver (on the configured pins), prints each input's
state as it changes and what the driver would send, and switches an output only after the
technician confirms. Nothing is sent or stored: events are printed, counts kept in memory.
Refuses to run beside the daemon on the board's pins, which the daemon holds.
"""

import threading
import time
from typing import Callable

from . import control
from base.clock import SystemClock
from .config import DeviceConfig
from .devices import build, pin_factory
from base.errors import TryggError

PULSE_S = 2.0


def run_test(cfg: DeviceConfig, name: str, seconds: float | None, confirm: Callable[[str], bool],
             say: Callable[[str], None]) -> None:
    if cfg.gpio.pins == "board" and control._alive(cfg.control.socket):
        raise TryggError("the daemon is running and holds the pins: stop it first (systemctl stop trygg)")
    factory = pin_factory(cfg.gpio.pins)
    world = None
    if factory is not None:
        from drivers.simworld import SimWorld

        world = SimWorld(factory, cfg)

    def show(event) -> bool:
        say(f"  would send: {event.cls} {event.kind} {event.body}")
        return True

    devices = build(cfg, show, SystemClock(), None, factory, after_open=world and world.after_open)
    try:
        driver = devices.named(name)
    except KeyError as exc:
        raise TryggError(str(exc.args[0])) from None
    config = getattr(driver, "cfg", None)
    pins = ", ".join(f"{field} GPIO{getattr(config, field).pin}" for field in type(config).model_fields
                     if hasattr(getattr(config, field), "pin"))
    say(f"{name} ({driver.kind}): {pins}")
    driver.open()
    try:
        watcher = _Watcher(driver, say)
        watcher.show_all()
        for output, device in driver.outputs.items():
            if confirm(f"Switch {output} (GPIO{device.pin.info.name.removeprefix('GPIO')}) on for {PULSE_S:g} s?"):
                with driver.guard:
                    device.on()
                say(f"  {output} on")
                watcher.watch(PULSE_S)
                with driver.guard:
                    device.off()
                say(f"  {output} off")
                watcher.watch(0.5)
        say("watching the inputs" + (f" for {seconds:g} s" if seconds else " (Ctrl-C to stop)"))
        watcher.watch(seconds)
    except KeyboardInterrupt:
        pass
    finally:
        driver.close()


class _Watcher:
    """Polls the driver (its real logic runs) and prints inputs whose state changed."""

    def __init__(self, driver, say) -> None:
        self.driver, self.say = driver, say
        self.last: dict[str, str | None] = {}
        self.tick = threading.Event()

    def show_all(self) -> None:
        self.driver.poll()
        self.last = self._states()
        self.say("  " + "   ".join(f"{k}: {v}" for k, v in self.last.items()))

    def watch(self, seconds: float | None) -> None:
        end = None if seconds is None else time.monotonic() + seconds
        while end is None or time.monotonic() < end:
            self.driver.poll()
            for key, value in self._states().items():
                if self.last.get(key) != value:
                    self.say(f"  {time.strftime('%H:%M:%S')} {key}: {value}")
                    self.last[key] = value
            self.tick.wait(0.05)

    def _states(self) -> dict[str, str | None]:
        return {n: c.word(self.driver.INPUTS.get(n)) for n, c in self.driver.inputs.items()}

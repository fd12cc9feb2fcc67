"""The one list of driver kinds: each registered once, with its config model beside it.

A driver module registers its class with `@register(section, config)`: the device's config
gets a `[section.NAME]` table per device of that kind (agent/config.py), the daemon builds one
driver per table (agent/devices.py), `trygg test NAME` and the simulated world find it by name,
and the pin check covers its wiring. Adding a kind is its module plus one line in KIND_MODULES.
"""

import importlib
from dataclasses import dataclass

KIND_MODULES = ("drivers.lock", "drivers.mat", "drivers.button", "drivers.motion", "drivers.dispenser")


@dataclass(frozen=True)
class DriverKind:
    section: str  # the config section: [mats.bedside]
    driver: type  # the Driver subclass
    config: type  # its config model (pydantic)
    stateful: bool  # keeps a little state across restarts (counts, doses left)
    default: dict  # devices configured when the section is left out (the board's front door)


_KINDS: dict[str, DriverKind] = {}


def register(section: str, config: type, *, stateful: bool = False, default: dict | None = None):
    """Class decorator: this driver handles the devices of [section.NAME], configured by `config`."""
    def decorate(driver: type) -> type:
        _KINDS[section] = DriverKind(section, driver, config, stateful, default or {})
        return driver
    return decorate


def kinds() -> dict[str, DriverKind]:
    """Every registered kind, by config section, in KIND_MODULES order."""
    for module in KIND_MODULES:
        importlib.import_module(module)
    return {k.section: k for k in sorted(_KINDS.values(), key=lambda k: KIND_MODULES.index(k.driver.__module__))}

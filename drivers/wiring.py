"""How a device is wired to the Pi: input contacts, outputs, a servo; device names.

Pins are BCM numbers on the Raspberry Pi header. A pin may be used by one input or output
only; the check across all devices is the agent's (agent/config.py). Pure data: each driver's
config model (beside the driver) is made of these.
"""

from typing import Annotated, Literal

from pydantic import Field, model_validator

from protocol.times import Strict, TimeWindow

Pin = Annotated[int, Field(ge=0, le=27)]
DeviceName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")]
NIGHT = [TimeWindow(start="22:00", end="07:00")]
DAY = [TimeWindow(start="07:00", end="22:00")]


class InputWiring(Strict):
    """A contact or sensor output on a GPIO pin. `active` is the level that means the named
    condition (pressed, bolt thrown, door closed, ...); the default follows the pull: a contact
    to ground with the pull-up reads low when closed."""

    pin: Pin
    pull: Literal["up", "down", "none"] = "up"
    active: Literal["low", "high", "default"] = "default"

    @model_validator(mode="after")
    def _level(self) -> "InputWiring":
        if self.pull == "none" and self.active == "default":
            raise ValueError("with pull = \"none\" the active level must be given: active = \"low\" or \"high\"")
        return self

    @property
    def active_high(self) -> bool:
        if self.active == "default":
            return self.pull == "down"
        return self.active == "high"


class OutputWiring(Strict):
    """A relay, LED or buzzer driver on a GPIO pin; `active` is the level that switches it on."""

    pin: Pin
    active: Literal["high", "low"] = "high"


class ServoWiring(Strict):
    """A hobby servo (PWM on a GPIO pin) that turns the camera: to the ceiling when closed."""

    pin: Pin
    closed_angle: float = Field(default=-90.0, ge=-90, le=90)
    open_angle: float = Field(default=0.0, ge=-90, le=90)

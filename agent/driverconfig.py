"""Config of what is not a driver kind of its own: the look-in camera and grant, and the pins.

Each driver kind's config model lives beside the driver (drivers/registry.py); their wiring
types are drivers/wiring.py's. Pure data.
"""

from typing import Literal

from pydantic import Field

from base.configbase import HHMM, Seconds, TimeWindow, _Section
from drivers.wiring import OutputWiring, ServoWiring


class LookinConfig(_Section):
    """The resident's look-in grant and the camera (docs/devices.md). Without `times` the
    `windows` apply; with `times`, look-ins are allowed within tolerance_s of each agreed time."""

    camera: Literal["none", "synthetic", "opencv", "picamera2"] = "none"
    device: int | str = 0  # opencv: the camera index or /dev/videoN
    width: int = Field(default=1280, ge=160, le=4096)
    height: int = Field(default=720, ge=120, le=3072)
    burst: int = Field(default=1, ge=1, le=5)  # frames per look-in
    privacy: Literal["none", "blur", "silhouette"] = "blur"
    roles: list[str] = ["night-staff"]
    windows: list[TimeWindow] = [TimeWindow(start="22:00", end="06:00")]
    times: list[HHMM] = []  # agreed look-in times
    tolerance_s: float = Field(default=900.0, ge=0, le=6 * 3600)
    max_per_night: int = Field(default=2, ge=0, le=50)
    indicator: OutputWiring | None = None  # LED lit while the camera is in use
    shutter: OutputWiring | None = None  # privacy shutter / camera turned to the ceiling: on = open
    servo: ServoWiring | None = None  # a servo turning the camera to the ceiling instead of a shutter
    shutter_open_s: float = Field(default=0.5, ge=0, le=5)  # time for the shutter to move before the capture


class GpioConfig(_Section):
    """board: the Raspberry Pi's pins (gpiozero's default factory). mock: gpiozero's MockFactory,
    for simulation and tests, with each lock's bolt following its relay."""

    pins: Literal["board", "mock"] = "board"
    restart_min_s: Seconds = 1.0  # a crashed driver is restarted after this, doubling up to max
    restart_max_s: Seconds = 300.0

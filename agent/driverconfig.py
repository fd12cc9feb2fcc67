"""Config of the home's devices: how each is wired (pins, levels, pulls) and how it behaves.

Pins are BCM numbers on the Raspberry Pi header. A pin may be used by one input or output
only; the check across all devices is in config.DeviceConfig. Schedules are local times in
[home] timezone. Pure data: the drivers receive these objects and read their fields.
"""

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from base.configbase import HHMM, Seconds, TimeWindow, _Section, check_hhmm

Pin = Annotated[int, Field(ge=0, le=27)]
DeviceName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")]
NIGHT = [TimeWindow(start="22:00", end="07:00")]
DAY = [TimeWindow(start="07:00", end="22:00")]


class InputWiring(_Section):
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


class OutputWiring(_Section):
    """A relay, LED or buzzer driver on a GPIO pin; `active` is the level that switches it on."""

    pin: Pin
    active: Literal["high", "low"] = "high"


class ServoWiring(_Section):
    """A hobby servo (PWM on a GPIO pin) that turns the camera: to the ceiling when closed."""

    pin: Pin
    closed_angle: float = Field(default=-90.0, ge=-90, le=90)
    open_angle: float = Field(default=0.0, ge=-90, le=90)


class MatConfig(_Section):
    """An alarm mat. floor: pressure longer than hold_s raises `fall`. bed: a resident out of bed
    longer than away_s raises `bed_exit`. Only inside its schedule. The supervision loop is the
    mat's normally-closed cable loop: open means the cable is cut or unplugged (`fault`)."""

    mode: Literal["floor", "bed"]
    pressure: InputWiring
    supervision: InputWiring
    debounce_s: float = Field(default=0.5, ge=0, le=60)
    hold_s: Seconds = 10.0  # floor: how long pressure must last to be a fall
    away_s: Seconds = 900.0  # bed: how long out of bed before the alarm
    schedule: list[TimeWindow] = NIGHT


class ButtonConfig(_Section):
    """An alarm button (wrist or wall). A press raises `help` at once; a second, long press within
    cancel_within_s sends `help_cancelled` as a follow-up. The alarm itself is never withheld."""

    input: InputWiring
    debounce_s: float = Field(default=0.05, ge=0, le=5)
    cancel_within_s: float = Field(default=60.0, ge=0, le=3600)  # 0: no cancelling
    cancel_hold_s: Seconds = 3.0


class MotionConfig(_Section):
    """A PIR motion sensor: `inactivity` when no motion for quiet_s inside the day window; a daily
    activity summary (counts per local hour) as telemetry."""

    input: InputWiring
    debounce_s: float = Field(default=0.2, ge=0, le=60)
    quiet_s: Seconds = 4 * 3600.0
    schedule: list[TimeWindow] = DAY


class DoseTime(_Section):
    """One dose: at `time` (local HH:MM), taken within window_s, late after late_s."""

    time: str
    window_s: Seconds = 3600.0
    late_s: Seconds = 1800.0

    @field_validator("time")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        return check_hhmm(value)


class DispenserConfig(_Section):
    """An automatic medicine dispenser: reminder output, dispense actuator, "taken" sensor (cup
    removed), empty and jam sensors; fill count for the almost-empty warning."""

    doses: list[DoseTime] = Field(min_length=1, max_length=12)
    dispense: OutputWiring
    reminder: OutputWiring
    taken: InputWiring
    empty: InputWiring
    jam: InputWiring
    debounce_s: float = Field(default=0.2, ge=0, le=60)
    dispense_pulse_s: float = Field(default=1.0, gt=0, le=30)
    fill_count: int = Field(default=28, ge=1, le=1000)  # doses loaded at a refill
    warn_days: float = Field(default=3.0, ge=0, le=60)  # `almost_empty` this many days before the last dose

    @model_validator(mode="after")
    def _doses(self) -> "DispenserConfig":
        times = [d.time for d in self.doses]
        if len(set(times)) != len(times):
            raise ValueError("two doses at the same time")
        return self


class LockWiring(_Section):
    """A door or medicine-cabinet lock: relay (energized = unlocked), bolt sensor (active = bolt
    thrown) and door contact (active = door closed)."""

    relay: OutputWiring
    bolt: InputWiring
    door: InputWiring
    debounce_s: float = Field(default=0.1, ge=0, le=10)
    confirm_s: Seconds = 3.0  # the bolt must move within this after the relay switches
    relock_after_s: Seconds = 60.0  # unlocked but the door never opened: lock again after this
    relock_delay_s: float = Field(default=3.0, ge=0, le=600)  # after the door closed again
    door_alarm: list[TimeWindow] = []  # door opened from inside in these windows: `door_open` alarm


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



class HealthConfig(_Section):
    """Telemetry on the device itself: CPU temperature, free disk, under-voltage, clock state."""

    every_s: Seconds = 900.0
    sysfs: str = "/sys"  # where the platform reports temperature and voltage (a test points elsewhere)


class GpioConfig(_Section):
    """board: the Raspberry Pi's pins (gpiozero's default factory). mock: gpiozero's MockFactory,
    for simulation and tests, with each lock's bolt following its relay."""

    pins: Literal["board", "mock"] = "board"
    restart_min_s: Seconds = 1.0  # a crashed driver is restarted after this, doubling up to max
    restart_max_s: Seconds = 300.0

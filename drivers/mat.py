"""Alarm mats, as home care uses them at night.

floor: a mat beside the bed; pressure lasting hold_s means someone is lying on it -> `fall`
  alarm; `mat_clear` when the pressure ends after an alarm.
bed: a mat in the bed; a resident who leaves the bed inside the schedule and is not back within
  away_s -> `bed_exit` alarm; `bed_return` when back after an alarm. Getting up before the
  schedule starts, or a timer running past its end, raises nothing (the morning is not an alarm).
The supervision loop is the mat cable's normally-closed loop: open means cut or unplugged, which
is a `fault` (the mat is not protecting anyone) and clears with `fault_cleared`; pressure is
ignored while the loop is open.
"""

from .base import Driver, soonest
from typing import Literal

from pydantic import Field

from protocol.times import Seconds, Strict, TimeWindow

from .registry import register
from .wiring import NIGHT, InputWiring


class MatConfig(Strict):
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


@register("mats", MatConfig)
class Mat(Driver):
    kind = "mat"
    INPUTS = {"pressure": ("pressed", "released"), "supervision": ("intact", "cut")}
    RESTING = {"supervision": True}  # the cable connected

    def __init__(self, name, config, emit, clock, **kw) -> None:
        super().__init__(name, emit, clock, **kw)
        self.cfg = config

    def setup(self) -> None:
        self.pressure = self.input("pressure", self.cfg.pressure, self.cfg.debounce_s)
        self.loop = self.input("supervision", self.cfg.supervision, self.cfg.debounce_s)
        self.alarmed = False
        self.cut = False
        self.away_since: float | None = None  # bed: left the bed inside the schedule
        self.pressed_at = 0.0  # floor: when the present pressure began

    def step(self, now: float) -> float | None:
        if self.loop.update(now):
            self._supervision(now)
        first = self.pressure.stable is None
        changed = self.pressure.update(now)
        if self.cut:
            return soonest(self.loop.due(), self.pressure.due())
        due = self._floor(now, changed) if self.cfg.mode == "floor" else self._bed(now, changed and not first)
        return soonest(self.loop.due(), self.pressure.due(), due)

    def _supervision(self, now: float) -> None:
        if not self.loop.stable and not self.cut:
            self.cut = True
            self.emit("event", "fault", {"component": self.component, "detail": "mat cable cut or unplugged "
                                         "(supervision loop open): this mat is not protecting the resident"})
        elif self.loop.stable and self.cut:
            self.cut = False
            self.alarmed = False
            self.emit("event", "fault_cleared", {"component": self.component, "detail": "mat cable connected again"})

    def _floor(self, now: float, changed: bool) -> float | None:
        if changed and self.pressure.stable:
            self.pressed_at = self.pressure.since
        pressed_s = now - self.pressed_at
        if changed and not self.pressure.stable and self.alarmed:
            self.alarmed = False
            self.emit("event", "mat_clear", {"pressed_s": round(self.pressure.since - self.pressed_at, 1)})
        if not self.pressure.stable or self.alarmed:
            return None
        if pressed_s < self.cfg.hold_s:
            return self.pressed_at + self.cfg.hold_s
        if self.in_schedule(self.cfg.schedule):
            self.alarmed = True
            self.emit("alarm", "fall", {"pressed_s": round(pressed_s, 1), "mode": "floor"})
        return None  # outside the schedule: the idle poll sees the schedule begin

    def _bed(self, now: float, changed: bool) -> float | None:
        """`changed` is False for the first reading: being out of bed at start-up is not leaving it."""
        in_bed = self.pressure.stable
        if changed:
            if in_bed:
                if self.alarmed:
                    self.emit("event", "bed_return", {"away_s": round(now - (self.away_since or now), 1)})
                self.alarmed, self.away_since = False, None
            elif self.in_schedule(self.cfg.schedule):
                self.away_since = self.pressure.since
        if in_bed or self.away_since is None or self.alarmed:
            return None
        away_s = now - self.away_since
        if away_s < self.cfg.away_s:
            return self.away_since + self.cfg.away_s
        if self.in_schedule(self.cfg.schedule):
            self.alarmed = True
            self.emit("alarm", "bed_exit", {"away_s": round(away_s, 1), "mode": "bed"})
        else:
            self.away_since = None  # the night ended while up: morning, not an alarm
        return None

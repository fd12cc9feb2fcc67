"""The alarm button (wrist or wall): a press is a `help` alarm, raised at once.

A resident who pressed by mistake may cancel with a second, long press (cancel_hold_s) within
cancel_within_s: that sends `help_cancelled` as a follow-up; the alarm was already sent and is
never withheld. A second press that is short is another `help` alarm (repeat: true), raised
when it is released or at the hold time, whichever first.

A button may have a light (`led`): steady while help is coming (a signed `help_coming`, once
night staff accepted the alarm), off again when that time is over. The time is kept here, on
the driver's clock and in step(), like every other timer; a restart lights it again.
"""

from datetime import datetime, timedelta

from .base import Driver, soonest
from pydantic import Field

from protocol.errors import TryggError
from protocol.times import Seconds, Strict

from .registry import register
from .wiring import InputWiring, OutputWiring


class LightError(TryggError, RuntimeError):
    """The button's light could not be switched (no light, or the driver is not running)."""


class ButtonConfig(Strict):
    """An alarm button (wrist or wall). A press raises `help` at once; a second, long press within
    cancel_within_s sends `help_cancelled` as a follow-up. The alarm itself is never withheld."""

    input: InputWiring
    debounce_s: float = Field(default=0.05, ge=0, le=5)
    cancel_within_s: float = Field(default=60.0, ge=0, le=3600)  # 0: no cancelling
    cancel_hold_s: Seconds = 3.0
    led: OutputWiring | None = None  # the button's light: steady while help is coming


@register("buttons", ButtonConfig)
class AlarmButton(Driver):
    kind = "button"
    INPUTS = {"button": ("pressed", "released")}

    def __init__(self, name, config, emit, clock, **kw) -> None:
        super().__init__(name, emit, clock, **kw)
        self.cfg = config
        self.help_until: float | None = None  # monotonic: the light is steady until then (kept over a restart)

    def setup(self) -> None:
        self.button = self.input("button", self.cfg.input, self.cfg.debounce_s)
        self.led = self.output("led", self.cfg.led) if self.cfg.led else None
        if self.led is not None and self.help_until is not None:
            self.led.on()  # restarted while help is coming: the resident must still see it
        self.alarm_at: float | None = None  # the last alarm, while it may still be cancelled
        self.second: float | None = None  # a press inside the cancel window, not yet judged

    def help_coming(self, seconds: float) -> datetime:
        """Light the button steady for `seconds` (again from now if already lit); the wall time on
        this driver's clock when it goes off (a simulated home's: the scenario's). LightError when
        this button has no light or its driver is not running."""
        with self.guard:
            if self.cfg.led is None:
                raise LightError(f"{self.name}: this button has no light (buttons.{self.name}.led)")
            if not self.is_open:
                raise LightError(f"{self.name}: the button's driver is not running ({self.error or 'starting'})")
            self.led.on()
            self.help_until = self.clock.monotonic() + seconds
            until = self.clock.now() + timedelta(seconds=seconds)
        self.wake()  # its runner may be waiting longer than that
        return until

    def health(self) -> dict:
        light = {"light": "on" if self.help_until is not None else "off"} if self.cfg.led else {}
        return {**super().health(), **light}

    def step(self, now: float) -> float | None:
        if self.help_until is not None and now >= self.help_until:
            self.help_until = None
            self.led.off()
        first = self.button.stable is None
        if self.button.update(now) and not first:
            if self.button.stable:
                self._pressed(self.button.since)
            elif self.second is not None:  # released before the hold: a repeat, not a cancel
                self.second = None
                self._alarm(self.button.since, repeat=True)
        # A release still settling decides it: held too short is a repeat, never a cancel.
        if self.second is not None and now - self.second >= self.cfg.cancel_hold_s and self.button.due() is None:
            self.emit("event", "help_cancelled", {"after_s": round(self.second - self.alarm_at, 1),
                                                  "held_s": round(now - self.second, 1)})
            self.second = self.alarm_at = None
        return soonest(self.button.due(), None if self.second is None else self.second + self.cfg.cancel_hold_s,
                       self.help_until)

    def _pressed(self, at: float) -> None:
        cancellable = self.alarm_at is not None and at - self.alarm_at <= self.cfg.cancel_within_s
        if cancellable and self.cfg.cancel_within_s > 0:
            self.second = at
        else:
            self._alarm(at, repeat=False)

    def _alarm(self, at: float, repeat: bool) -> None:
        self.alarm_at = at
        self.emit("alarm", "help", {"repeat": repeat})

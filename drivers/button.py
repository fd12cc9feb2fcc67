"""The alarm button (wrist or wall): a press is a `help` alarm, raised at once.

A resident who pressed by mistake may cancel with a second, long press (cancel_hold_s) within
cancel_within_s: that sends `help_cancelled` as a follow-up; the alarm was already sent and is
never withheld. A second press that is short is another `help` alarm (repeat: true), raised
when it is released or at the hold time, whichever first.
"""

from .base import Driver, soonest
from pydantic import Field

from protocol.times import Seconds, Strict

from .registry import register
from .wiring import InputWiring


class ButtonConfig(Strict):
    """An alarm button (wrist or wall). A press raises `help` at once; a second, long press within
    cancel_within_s sends `help_cancelled` as a follow-up. The alarm itself is never withheld."""

    input: InputWiring
    debounce_s: float = Field(default=0.05, ge=0, le=5)
    cancel_within_s: float = Field(default=60.0, ge=0, le=3600)  # 0: no cancelling
    cancel_hold_s: Seconds = 3.0


@register("buttons", ButtonConfig)
class AlarmButton(Driver):
    kind = "button"
    INPUTS = {"button": ("pressed", "released")}

    def __init__(self, name, config, emit, clock, **kw) -> None:
        super().__init__(name, emit, clock, **kw)
        self.cfg = config

    def setup(self) -> None:
        self.button = self.input("button", self.cfg.input, self.cfg.debounce_s)
        self.alarm_at: float | None = None  # the last alarm, while it may still be cancelled
        self.second: float | None = None  # a press inside the cancel window, not yet judged

    def step(self, now: float) -> float | None:
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
        return soonest(self.button.due(), None if self.second is None else self.second + self.cfg.cancel_hold_s)

    def _pressed(self, at: float) -> None:
        cancellable = self.alarm_at is not None and at - self.alarm_at <= self.cfg.cancel_within_s
        if cancellable and self.cfg.cancel_within_s > 0:
            self.second = at
        else:
            self._alarm(at, repeat=False)

    def _alarm(self, at: float, repeat: bool) -> None:
        self.alarm_at = at
        self.emit("alarm", "help", {"repeat": repeat})

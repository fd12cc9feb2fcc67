"""A PIR motion sensor: the early-warning signal proactive care asks for.

`inactivity` alarm when no motion is seen for quiet_s inside the day window (quiet time counts
from the window's start, so a night's sleep is not inactivity); `activity_resumed` when motion
returns after that alarm. Each local day's motion counts per hour go out as `activity_summary`
telemetry after midnight. The counts are kept in the injected state store across restarts.

What is kept, and why: only today's per-hour counts (to send the whole day's summary after a
restart) and the day they belong to; a finished day is sent and dropped. The counts say when
the resident was up, so only `day` is named in PLAIN_STATE: the store seals the rest.
"""

from .base import Driver, soonest
from pydantic import Field

from protocol.times import Seconds, Strict, TimeWindow

from .registry import register
from .wiring import DAY, InputWiring


class MotionConfig(Strict):
    """A PIR motion sensor: `inactivity` when no motion for quiet_s inside the day window; a daily
    activity summary (counts per local hour) as telemetry."""

    input: InputWiring
    debounce_s: float = Field(default=0.2, ge=0, le=60)
    quiet_s: Seconds = 4 * 3600.0
    schedule: list[TimeWindow] = DAY


@register("motion", MotionConfig, stateful=True)
class Motion(Driver):
    kind = "motion"
    INPUTS = {"motion": ("motion", "still")}
    PLAIN_STATE = ("day",)  # the state fields a store may keep readable; the rest is about the resident

    def __init__(self, name, config, emit, clock, state, **kw) -> None:
        super().__init__(name, emit, clock, **kw)
        self.cfg = config
        self.state = state

    def setup(self) -> None:
        self.pir = self.input("motion", self.cfg.input, self.cfg.debounce_s)
        saved = self.state.load()
        today = self.local_now().date().isoformat()
        self.day = saved.get("day", today)
        counts = saved.get("per_hour")
        self.per_hour = counts if isinstance(counts, list) and len(counts) == 24 else [0] * 24
        now = self.clock.monotonic()
        self.quiet_from = now  # no motion seen yet: count from now, never from before start-up
        self.in_window = self.in_schedule(self.cfg.schedule)
        self.alarmed = False

    def step(self, now: float) -> float | None:
        self._roll_day()
        first = self.pir.stable is None
        if self.pir.update(now) and self.pir.stable and not first:
            self._motion(now)
        in_window = self.in_schedule(self.cfg.schedule)
        if in_window and not self.in_window:
            self.quiet_from = max(self.quiet_from, now)  # the day window opened: quiet counts from here
        self.in_window = in_window
        if self.alarmed or not in_window:
            return self.pir.due()
        quiet = now - self.quiet_from
        if quiet >= self.cfg.quiet_s:
            self.alarmed = True
            self.emit("alarm", "inactivity", {"quiet_s": round(quiet), "quiet_limit_s": self.cfg.quiet_s})
            return self.pir.due()
        return soonest(self.pir.due(), self.quiet_from + self.cfg.quiet_s)

    def _motion(self, now: float) -> None:
        if self.alarmed:
            self.alarmed = False
            self.emit("event", "activity_resumed", {"quiet_s": round(now - self.quiet_from)})
        self.quiet_from = now
        self.per_hour[self.local_now().hour] += 1
        self._save()

    def _roll_day(self) -> None:
        today = self.local_now().date().isoformat()
        if today == self.day:
            return
        self.emit("telemetry", "activity_summary", {"date": self.day, "per_hour": self.per_hour,
                                                    "total": sum(self.per_hour)})
        self.day, self.per_hour = today, [0] * 24
        self._save()

    def _save(self) -> None:
        self.state.save({"day": self.day, "per_hour": self.per_hour})

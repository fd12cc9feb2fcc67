"""The automatic medicine dispenser: reminds, dispenses and records whether each dose was taken.

At each dose time (local) the reminder output goes on and the dispense actuator is pulsed;
the "taken" sensor (cup removed) within the dose's window is `dose_taken` (late after late_s),
and a window that passes is a `dose_missed` alarm. Empty and jam sensors are `dispenser_empty`
and `dispenser_jam` events (and a dose is not dispensed into a jam). From the fill count the
driver knows how many doses are left and warns `almost_empty` warn_days before the last, so a
nurse refills before a dose is missed. A daily `dose_summary` (taken, missed, late, days left,
faults, power interruptions) goes out as telemetry after midnight. Counts are kept in the
injected state store, so a restart or power cut does not forget them; a start that finds the
store marked running counts as a power interruption.

What is kept, and why: what the dispenser decides with after a restart (doses left and
whether the warning was given, the day, whether it was running), readable (PLAIN_STATE); the
open dose and the doses handled today and yesterday (so a dose is never dispensed twice; older
ones are dropped, no window reaches back further) and today's counts (for the day's summary),
which the store seals. Whether and when each dose was taken is not kept: it went to the
center as dose_taken / dose_missed.
"""

from datetime import datetime, timedelta

from .base import Driver, soonest
from pydantic import Field, field_validator, model_validator

from protocol.times import Seconds, Strict, check_hhmm

from .registry import register
from .wiring import InputWiring, OutputWiring


class DoseTime(Strict):
    """One dose: at `time` (local HH:MM), taken within window_s, late after late_s."""

    time: str
    window_s: Seconds = 3600.0
    late_s: Seconds = 1800.0

    @field_validator("time")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        return check_hhmm(value)


class DispenserConfig(Strict):
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


@register("dispensers", DispenserConfig, stateful=True)
class Dispenser(Driver):
    kind = "dispenser"
    INPUTS = {"taken": ("removed", "returned"), "empty": ("empty", "ok"), "jam": ("jammed", "ok")}
    PLAIN_STATE = ("left", "warned", "day", "running")  # readable in a store; the rest is about the resident

    def __init__(self, name, config, emit, clock, state, **kw) -> None:
        super().__init__(name, emit, clock, **kw)
        self.cfg = config
        self.state = state
        self.s: dict = {}

    def setup(self) -> None:
        self.taken = self.input("taken", self.cfg.taken, self.cfg.debounce_s)
        self.empty = self.input("empty", self.cfg.empty, self.cfg.debounce_s)
        self.jam = self.input("jam", self.cfg.jam, self.cfg.debounce_s)
        self.dispense = self.output("dispense", self.cfg.dispense)
        self.reminder = self.output("reminder", self.cfg.reminder)
        saved = self.state.load()
        self.s = {"left": self.cfg.fill_count, "warned": False, "done": [], "current": None,
                  "day": self.local_now().date().isoformat(), "counts": {}, **saved}
        if saved.get("running"):  # the last run never closed: the power went (or the process died)
            self._count("power_interruptions")
        self.s["running"] = True
        self.current = self.s["current"]  # the dose whose window is open: {"key", "time", "started_wall"}
        if self.current:
            self.reminder.on()
        self._save()

    def close(self) -> None:
        if self.s.get("running"):
            self.s["running"] = False
            self._save()
        super().close()

    # -- a nurse's refill (control socket) -----------------------------------------------------
    def refill(self, count: int | None = None) -> dict:
        with self.guard:
            self.s["left"], self.s["warned"] = self.cfg.fill_count if count is None else count, False
            self._save()
            self.emit("event", "dispenser_refilled", {"doses_left": self.s["left"], "days_left": self.days_left()})
            return {"doses_left": self.s["left"], "days_left": self.days_left()}

    def days_left(self) -> float:
        return round(self.s["left"] / len(self.cfg.doses), 1)

    # -- the schedule --------------------------------------------------------------------------
    def step(self, now: float) -> float | None:
        local = self.local_now()
        for contact, kind in ((self.empty, "dispenser_empty"), (self.jam, "dispenser_jam")):
            if contact.update(now) and contact.stable:
                self._count("faults")
                self._save()
                self.emit("event", kind, {"doses_left": self.s["left"]})
        first = self.taken.stable is None
        taken = self.taken.update(now) and self.taken.stable and not first
        if self.current:
            self._watch_current(local, taken)
        else:
            self._start_due(local)
        self._roll_day(local)  # after judging the open dose, so a miss counts on its own day
        return soonest(self.taken.due(), self.empty.due(), self.jam.due())  # dose times: within IDLE_S

    def _start_due(self, local: datetime) -> None:
        for dose in self.cfg.doses:
            start = self._dose_start(local, dose)
            key = start and f"{start.date().isoformat()} {dose.time}"
            if start is None or key in self.s["done"]:
                continue
            self.current = {"key": key, "time": dose.time, "start": start.isoformat(), "dispensed": False}
            self.s["current"] = self.current
            self.reminder.on()
            if not self._dispense():
                self.emit("event", "dispenser_jam" if self.jam.stable else "dispenser_empty",
                          {"dose": dose.time, "detail": "dose due but not dispensed"})
            self._save()
            return

    def _dispense(self) -> bool:
        """Pulse the actuator unless jammed or empty; a dose not dispensed cannot be taken."""
        if self.jam.stable or self.empty.stable:
            return False
        self.dispense.on()
        self.clock.sleep(self.cfg.dispense_pulse_s)
        self.dispense.off()
        self.current["dispensed"] = True
        self.s["left"] = max(0, self.s["left"] - 1)
        self._warn_if_low()
        return True

    def _dose_start(self, local: datetime, dose) -> datetime | None:
        """The start of this dose's window that contains `local` (today's or yesterday's), else None."""
        hour, minute = map(int, dose.time.split(":"))
        for days_back in (0, 1):
            day = (local - timedelta(days=days_back)).date()
            start = datetime(day.year, day.month, day.day, hour, minute, tzinfo=self.zone)
            if start <= local < start + timedelta(seconds=dose.window_s):
                return start
        return None

    def _watch_current(self, local: datetime, taken: bool) -> None:
        dose = next((d for d in self.cfg.doses if d.time == self.current["time"]), None)
        if dose is None:  # the schedule changed under an open dose: nothing left to judge
            taken = False
        start = datetime.fromisoformat(self.current["start"])
        after = (local - start).total_seconds()
        if not self.current.get("dispensed", True) and dose is not None and after < dose.window_s:
            taken = False  # an empty cup lifted is not a dose taken
            if self._dispense():  # the jam was cleared or the magazine refilled in time
                self._save()
        if taken:
            late = after > dose.late_s
            self._count("late" if late else "taken")
            self.emit("event", "dose_taken", {"dose": self.current["time"], "after_s": round(after), "late": late})
        elif dose is not None and after >= dose.window_s:
            self._count("missed")
            self.emit("alarm", "dose_missed", {"dose": self.current["time"], "window_s": dose.window_s,
                                               "dispensed": self.current.get("dispensed", True)})
        elif dose is not None:
            return
        self.reminder.off()
        since = (local - timedelta(days=1)).date().isoformat()  # a window starts today or yesterday
        self.s["done"] = [k for k in self.s["done"] + [self.current["key"]] if k[:10] >= since][-50:]
        self.current = self.s["current"] = None
        self._save()

    def _warn_if_low(self) -> None:
        if not self.s["warned"] and self.days_left() <= self.cfg.warn_days:
            self.s["warned"] = True
            self.emit("event", "almost_empty", {"doses_left": self.s["left"], "days_left": self.days_left()})

    def _count(self, what: str) -> None:
        self.s["counts"][what] = self.s["counts"].get(what, 0) + 1

    def _roll_day(self, local: datetime) -> None:
        today = local.date().isoformat()
        if today == self.s["day"]:
            return
        counts = self.s["counts"]
        self.emit("telemetry", "dose_summary", {
            "date": self.s["day"], **{k: counts.get(k, 0) for k in ("taken", "late", "missed", "faults",
                                                                     "power_interruptions")},
            "doses_left": self.s["left"], "days_left": self.days_left()})
        self.s["day"], self.s["counts"] = today, {}
        self._save()

    def _save(self) -> None:
        self.state.save(self.s)

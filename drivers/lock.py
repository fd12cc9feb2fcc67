"""Door and medicine-cabinet locks: relay out; bolt sensor and door contact in.

unlock/lock switch the relay and confirm from the bolt sensor within confirm_s; a bolt that
does not move is a `lock_fault` event and the lock counts as jammed, and a jammed lock refuses
to unlock and says so until its bolt is seen to move again. After a staff unlock the lock
locks itself again once the door has been opened and closed (after relock_delay_s), or after
relock_after_s if the door was never opened; each such visit is recorded as a `visit` event
with who and how long, as home care records time spent in the home. Opening from inside (the
bolt turned by hand) is a `manual_unlock` event, and a door opened inside a door_alarm window
without staff is a `door_open` alarm (a resident with dementia leaving at night). After a
manual opening the lock does not lock itself: nobody is locked out in the cold.
"""

from .base import Driver, soonest
from protocol.errors import TryggError
from pydantic import Field

from protocol.times import Seconds, Strict, TimeWindow

from .registry import register
from .wiring import InputWiring, OutputWiring

SETTLE_POLL_S = 0.02


class LockWiring(Strict):
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


class LockError(TryggError, RuntimeError):
    """The lock did not do what was asked."""


class LockJammed(LockError):
    """The sensors say the lock is jammed: refused before trying."""


@register("locks", LockWiring)
class Lock(Driver):
    kind = "lock"
    INPUTS = {"bolt": ("thrown", "retracted"), "door": ("closed", "open")}
    RESTING = {"door": True}  # closed
    LINKED = ("relay", "bolt")  # a working lock: the bolt follows the relay

    def __init__(self, name, config, emit, clock, **kw) -> None:
        super().__init__(name, emit, clock, **kw)
        self.cfg = config
        self.jammed: str | None = None
        self.visit: dict | None = None

    def setup(self) -> None:
        self.bolt = self.input("bolt", self.cfg.bolt, self.cfg.debounce_s)
        self.door = self.input("door", self.cfg.door, self.cfg.debounce_s)
        self.relay = self.output("relay", self.cfg.relay)  # after the bolt: its initial "off" is the locked state
        self._end_visit("driver restarted", "")  # the relay is off again: a visit cannot outlive it
        self.relock_at: float | None = None
        self.door_opened_at: float | None = None

    @property
    def state(self) -> str:
        if self.jammed:
            return "jammed"
        if getattr(self, "bolt", None) is None or self.bolt.stable is None:
            return "unknown"
        return "locked" if self.bolt.stable else "unlocked"

    def health(self) -> dict:
        return {**super().health(), "state": self.state, "jammed": self.jammed, "visit": self.visit is not None}

    # -- actions (from signed, already authorized commands) ------------------------------------
    def _check_running(self) -> None:
        if not self.is_open:
            raise LockError(f"{self.name}: the lock's driver is not running ({self.error or 'starting'})")

    def unlock(self, by: str = "") -> dict:
        with self.guard:
            self._check_running()
            self.step(self.clock.monotonic())  # a bolt thrown by hand just now is seen before "already unlocked"
            if self.jammed:
                raise LockJammed(f"{self.name} is jammed ({self.jammed}); not unlocking - send a technician")
            now = self.clock.monotonic()
            if self.relay.value:
                if self.door.stable:  # already unlocked by staff, door closed: more time before relocking
                    self.relock_at = now + self.cfg.relock_after_s
                return {"state": "unlocked", "already": True}
            took = self._move(retract=True)
            self.visit = {"staff": by, "start": now, "started": self.local_now().isoformat(timespec="seconds"),
                          "door_opened": False}
            self.relock_at = self.clock.monotonic() + self.cfg.relock_after_s
            return {"state": "unlocked", "confirmed_s": round(took, 2), "relock_after_s": self.cfg.relock_after_s}

    def lock(self, by: str = "") -> dict:
        with self.guard:
            self._check_running()
            self.step(self.clock.monotonic())  # a door opening just now is judged (and alarmed) as usual
            if self.door.stable is False:
                raise LockError(f"{self.name}: the door is open; lock it when it is closed")
            took = self._move(retract=False)
            self._end_visit("locked by command", by)
            return {"state": "locked", "confirmed_s": round(took, 2)}

    def _move(self, retract: bool) -> float:
        """Switch the relay and wait for the bolt to follow; a bolt that does not is a jam."""
        start = self.clock.monotonic()
        self.relay.value = retract
        deadline = start + self.cfg.confirm_s
        while True:
            now = self.clock.monotonic()
            self.bolt.update(now)
            if self.bolt.stable is (not retract):
                return now - start
            if now >= deadline:
                break
            self.clock.sleep(SETTLE_POLL_S)
        self.relay.value = False  # never leave the actuator powered against a stuck bolt
        self.jammed = f"bolt did not {'retract' if retract else 'throw'} within {self.cfg.confirm_s:g} s"
        self.emit("event", "lock_fault", {"detail": self.jammed, "action": "unlock" if retract else "lock"})
        self.relock_at = None
        raise LockError(f"{self.name}: {self.jammed}")

    # -- what the sensors say ------------------------------------------------------------------
    def step(self, now: float) -> float | None:
        first = self.bolt.stable is None
        if self.bolt.update(now) and not first:
            self._bolt_moved()
        first = self.door.stable is None
        if self.door.update(now) and not first:
            self._door_moved(now)
        if self.relock_at is not None and now >= self.relock_at and self.door.stable:
            self.relock_at = None
            try:
                self._move(retract=False)
                self._end_visit("relocked", "")
            except LockError:
                pass  # reported as lock_fault; the lock stays as it is
        return soonest(self.bolt.due(), self.door.due(), self.relock_at if self.door.stable else None)

    def _bolt_moved(self) -> None:
        if self.jammed:
            self.jammed = None
            self.emit("event", "fault_cleared", {"component": self.component, "detail": "bolt moves again"})
        if not self.bolt.stable and not self.relay.value:
            self.emit("event", "manual_unlock", {"detail": "bolt turned by hand (from inside)"})
        elif self.bolt.stable and self.relay.value:
            self.relay.value = False  # thrown by hand during a visit: the visit is over
            self._end_visit("locked by hand", "")

    def _door_moved(self, now: float) -> None:
        if not self.door.stable:  # opened
            self.door_opened_at = self.door.since
            if self.visit is not None:
                self.visit["door_opened"] = True
                self.relock_at = None
                return
            night = bool(self.cfg.door_alarm) and self.in_schedule(self.cfg.door_alarm)
            self.emit("alarm" if night else "event", "door_open", {"by": "inside", "night": night})
        else:  # closed
            open_s = round(now - (self.door_opened_at or now), 1)
            if self.visit is not None:
                self.relock_at = now + self.cfg.relock_delay_s
            else:
                self.emit("event", "door_closed", {"open_s": open_s})

    def _end_visit(self, how: str, by: str) -> None:
        if self.visit is None:
            return
        visit, self.visit = self.visit, None
        self.emit("event", "visit", {"staff": visit["staff"], "started": visit["started"], "ended": how,
                                     "duration_s": round(self.clock.monotonic() - visit["start"], 1),
                                     "door_opened": visit["door_opened"], **({"locked_by": by} if by else {})})

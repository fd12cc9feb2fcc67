"""Who may do what, when: roles, per-lock unlock rules, open alarms and planned visit windows.

Checked on the device, whatever the center believes, as digital home-care locks do: a role
lists the actions it may give ([roles]); each lock says per role whether unlocking is
allowed always, never, only while an alarm from this home is open, only inside a planned
visit window, or either ([locks.NAME]). A role or lock not named is refused (fail closed).
Only a real driver's alarm opens it: the daemon calls note_alarm() from the path real drivers
emit through, never for `trygg simulate`, a test alarm or a simulated home's scenario, since
anyone with the CLI or the config can make those.
Open alarms are timed on the monotonic clock, so they need no trusted wall time; visit
windows are local wall times, so without a synchronized clock they cannot be established
and are refused with that reason. Pure decisions: no I/O.
"""

from datetime import datetime
from zoneinfo import ZoneInfo

from .config import DeviceConfig, VisitWindow
from protocol.actions import ACTION_ARGS  # the arguments each action takes; anything else is refused
from protocol.refusals import Refusal  # each reason with its code (protocol/refusals.POLICY)



def in_window(local: datetime, window: VisitWindow) -> bool:
    """Is this local time inside the window? (The window's own check; kept for readers of policy.)"""
    return window.contains(local)


class Policy:
    def __init__(self, config: DeviceConfig, clock) -> None:
        self.roles = config.roles
        self.locks = config.locks
        self.alarm_open_s = config.commands.alarm_open_s
        self.zone = ZoneInfo(config.home.timezone)
        self.clock = clock
        self._last_alarm: float | None = None
        self.last_alarm_wall: float | None = None  # for the daemon to keep across a restart

    def note_alarm(self) -> None:
        """A real driver raised an alarm in this home: night staff may come in for a while.
        (Simulated and test alarms never get here; the daemon keeps only this time across a restart.)"""
        self._last_alarm = self.clock.monotonic()
        self.last_alarm_wall = self.clock.time() if self.clock.synced() else None

    def restore_alarm(self, wall_time: float) -> None:
        """After a restart: an alarm raised at this (synchronized) wall time is still open if recent.

        A daemon that crashed during an alarm must not lock out the staff coming to help. Only
        trusted when the clock is synchronized now; otherwise the alarm stays closed (fail closed).
        """
        if not self.clock.synced():
            return
        age = self.clock.time() - wall_time
        if 0 <= age < self.alarm_open_s:
            self._last_alarm = self.clock.monotonic() - age

    def alarm_open(self) -> bool:
        return self._last_alarm is not None and self.clock.monotonic() - self._last_alarm < self.alarm_open_s

    def refusal(self, role: str, action: str, args: dict) -> Refusal | None:
        """Why this role may not do this now, or None when it may."""
        if action not in ACTION_ARGS:
            return Refusal("unknown_action", f"unknown action {action!r}")
        if action not in self.roles.get(role, []):
            return Refusal("role", f"role {role} may not give the command {action!r}")
        extra = set(args) - set(ACTION_ARGS[action])
        if extra:
            return Refusal("argument", f"unknown argument(s) for {action}: {', '.join(sorted(extra))}")
        if action in ("unlock", "lock"):
            lock = args.get("lock")
            if not isinstance(lock, str) or lock not in self.locks:
                return Refusal("lock", f"no lock named {lock!r} in this home (known: {', '.join(sorted(self.locks))})")
            if action == "unlock":
                return self._unlock_refusal(role, lock)
        return None

    def _unlock_refusal(self, role: str, lock: str) -> Refusal | None:
        rule = self.locks[lock].unlock.get(role, "never")
        if rule == "always":
            return None
        if rule == "never":
            return Refusal("never", f"role {role} may never unlock {lock}")
        if rule in ("alarm", "alarm_or_visit") and self.alarm_open():
            return None
        if rule in ("visit", "alarm_or_visit"):
            visit = self._in_visit(lock)
            if visit:
                return None
            if visit is None and rule == "visit":
                return Refusal("unsynced", f"device clock not synchronized: the visit window for {lock} cannot be checked")
        code, text = {
            "alarm": ("no_alarm", f"role {role} may unlock {lock} only while an alarm from this home is open"),
            "visit": ("no_visit", f"role {role} may unlock {lock} only inside a planned visit window"),
            "alarm_or_visit": ("no_alarm_or_visit",
                               f"role {role} may unlock {lock} only while an alarm is open or inside a planned visit "
                               "window" + ("" if self.clock.synced()
                                          else " (visit windows cannot be checked: clock not synchronized)")),
        }[rule]
        return Refusal(code, text)

    def _in_visit(self, lock: str) -> bool | None:
        """True/False, or None when the wall clock cannot be trusted."""
        if not self.clock.synced():
            return None
        local = self.clock.now().astimezone(self.zone)
        return any(in_window(local, w) for w in self.locks[lock].visits)

"""The resident's look-in grant: who may look in, when, how often a night, and how filtered.

Look-ins are allowed only inside the granted windows or within a tolerance of the agreed
look-in times, only for the granted roles, and at most max_per_night per night (a "night" is
counted from noon to noon, local time). The count is kept in trust.db, so a restart does not
give the night's look-ins back. Without a synchronized clock the window cannot be checked and
every look-in is refused (fail closed: privacy before convenience). Pure decisions plus the
count; the camera and the command path live elsewhere.
"""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from .trustdb import TrustDB


def night_of(local: datetime) -> str:
    """The night a local time belongs to, named by its evening's date (noon to noon)."""
    return (local - timedelta(hours=12)).date().isoformat()


class Grant:
    def __init__(self, config, zone: str, clock, trust: TrustDB) -> None:
        self.cfg, self.zone, self.clock, self.trust = config, ZoneInfo(zone), clock, trust

    def local(self) -> datetime:
        return self.clock.now().astimezone(self.zone)

    def used(self, night: str | None = None) -> int:
        night = night or night_of(self.local())
        return int(self.trust.setting(f"lookin:used:{night}") or 0)

    def left(self) -> int | None:
        """Look-ins left tonight (None when the clock cannot say which night it is)."""
        if not self.clock.synced():
            return None
        return max(0, self.cfg.max_per_night - self.used())

    def refusal(self, role: str) -> str | None:
        """Why this role may not look in now, or None when it may."""
        cfg = self.cfg
        if cfg.camera == "none":
            return "no camera in this home"
        if role not in cfg.roles:
            return f"the resident's grant does not let role {role} look in (granted: {', '.join(cfg.roles) or 'nobody'})"
        if not self.clock.synced():
            return "device clock not synchronized: the granted look-in hours cannot be checked"
        local = self.local()
        if not self._inside(local):
            return f"outside the granted look-in hours ({self._describe()})"
        if self.used(night_of(local)) >= cfg.max_per_night:
            return f"the {cfg.max_per_night} look-in(s) granted for tonight are used"
        return None

    def count(self, conn) -> int:
        """Inside a trust.db write: count one look-in for tonight; returns how many are left."""
        night = night_of(self.local())
        used = self.used(night) + 1
        TrustDB.put_setting(conn, f"lookin:used:{night}", str(used))
        return max(0, self.cfg.max_per_night - used)

    def _inside(self, local: datetime) -> bool:
        if self.cfg.times:
            return any(abs(_seconds_apart(local, t)) <= self.cfg.tolerance_s for t in self.cfg.times)
        return any(w.contains(local) for w in self.cfg.windows)

    def _describe(self) -> str:
        if self.cfg.times:
            return f"{', '.join(self.cfg.times)} ± {self.cfg.tolerance_s / 60:g} min"
        return ", ".join(f"{w.start}-{w.end}" for w in self.cfg.windows) or "none"


def _seconds_apart(local: datetime, hhmm: str) -> float:
    """Signed seconds from the nearest occurrence of HH:MM (yesterday, today or tomorrow)."""
    hour, minute = map(int, hhmm.split(":"))
    today = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return min(((local - (today + timedelta(days=d))).total_seconds() for d in (-1, 0, 1)), key=abs)

"""The resident's look-in grant: who may look in, when, how often a night, and how filtered.

Look-ins are allowed only inside the granted windows or within a tolerance of the agreed
look-in times, only for the granted roles, and at most max_per_night per night (a "night" is
counted from noon to noon, local time). The grant starts as the config's [lookin]; a change
(a signed `lookin_grant` command from an allowed role, or `trygg grant set` by a technician on
the device) is kept in trust.db over it and audited in the same transaction. The counts
(granted and refused per night) are kept there too, so a restart gives no look-ins back.
Without a synchronized clock the hours cannot be checked and every look-in is refused (fail
closed: privacy before convenience), unless the grant is for every hour (a window with start
== end, every day: the simulation's demo grant). Pure decisions plus the counts; the camera lives elsewhere.
"""

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from .config import describe_errors
from .driverconfig import LookinConfig
from base.errors import ConfigError
from protocol.lookin import LookinPlan
from protocol.actions import ACTION_ARGS
from protocol.names import night_of
from protocol.refusals import Refusal
from .trustdb import TrustDB

CHANGEABLE = ACTION_ARGS["lookin_grant"]  # what a lookin_grant command may change
_OVERRIDE = "lookin:grant"


def parse_change(args: dict) -> dict:
    """A grant change from command or CLI arguments (scalars) into config values.

    roles and times are comma-separated ("night-staff,nurse", "23:00,03:00"; "" clears times),
    windows are comma-separated "HH:MM-HH:MM" (every day).
    """
    unknown = set(args) - set(CHANGEABLE)
    if unknown:
        raise ConfigError(f"a grant has no {', '.join(sorted(unknown))} (changeable: {', '.join(CHANGEABLE)})")
    out: dict = {}
    for key, value in args.items():
        if key in ("roles", "times", "windows"):
            if not isinstance(value, str):
                raise ConfigError(f"{key}: expected a comma-separated text, got {value!r}")
            items = [v.strip() for v in value.split(",") if v.strip()]
            if key == "windows":
                items = [dict(zip(("start", "end"), w.split("-", 1))) if "-" in w else {"start": w} for w in items]
            out[key] = items
        else:
            out[key] = value
    return out


class Grant:
    def __init__(self, config: LookinConfig, zone: str, clock, trust: TrustDB, known_roles=()) -> None:
        self.base, self.zone, self.clock, self.trust = config, ZoneInfo(zone), clock, trust
        self.known_roles = set(known_roles)

    # -- the grant in force ----------------------------------------------------------------
    @property
    def cfg(self) -> LookinConfig:
        """The config's grant with the recorded changes over it."""
        saved = self.trust.setting(_OVERRIDE)
        if not saved:
            return self.base
        return LookinConfig.model_validate({**self.base.model_dump(), **json.loads(saved)})

    def change(self, args: dict, by: str, audit) -> LookinConfig:
        """Change the grant (validated as config is), audited with who and what; returns the new grant."""
        updates = parse_change(args)
        if not updates:
            raise ConfigError("nothing to change: give at least one of " + ", ".join(CHANGEABLE))
        with self.trust.write() as conn:
            saved = json.loads(TrustDB.setting_in(conn, _OVERRIDE) or "{}")
            merged = {**saved, **updates}
            try:
                new = LookinConfig.model_validate({**self.base.model_dump(), **merged})
            except ValidationError as exc:
                raise ConfigError("invalid grant:\n" + describe_errors(exc)) from None
            strangers = [r for r in new.roles if self.known_roles and r not in self.known_roles]
            if strangers:
                raise ConfigError(f"invalid grant: role(s) {', '.join(strangers)} not in [roles] "
                                  f"(known: {', '.join(sorted(self.known_roles))})")
            kept = new.model_dump(mode="json", include=set(merged))
            TrustDB.put_setting(conn, _OVERRIDE, json.dumps(kept, sort_keys=True))
            audit.append("lookin_grant_changed", {"by": by, "changed": sorted(updates), "grant": self.plan(new)}, conn)
        return new

    def plan(self, cfg: LookinConfig | None = None) -> dict:
        """What the center needs to plan the night's look-ins (the `lookin_plan` event)."""
        cfg = cfg or self.cfg
        return LookinPlan(camera=cfg.camera, timezone=self.zone.key, times=list(cfg.times), tolerance_s=cfg.tolerance_s,
                          max_per_night=cfg.max_per_night, privacy=cfg.privacy, roles=list(cfg.roles),
                          windows=list(cfg.windows)).model_dump(mode="json")

    # -- decisions and counts ----------------------------------------------------------------
    def local(self) -> datetime:
        return self.clock.now().astimezone(self.zone)

    def used(self, night: str | None = None, what: str = "used") -> int:
        night = night or night_of(self.local())
        return int(self.trust.setting(f"lookin:{what}:{night}") or 0)

    def left(self, cfg: LookinConfig | None = None) -> int | None:
        """Look-ins left tonight (None when the clock cannot say which night it is)."""
        cfg = cfg or self.cfg
        if not self.clock.synced() and not _any_hour(cfg):
            return None
        return max(0, cfg.max_per_night - self.used())

    def refusal(self, role: str, cfg: LookinConfig | None = None) -> Refusal | None:
        """Why this role may not look in now (with its code, protocol/refusals.ACTION["lookin"]), or None."""
        cfg = cfg or self.cfg
        if cfg.camera == "none":
            return Refusal("no_camera", "no camera in this home")
        if role not in cfg.roles:
            return Refusal("role", f"the resident's grant does not let role {role} look in "
                                   f"(granted: {', '.join(cfg.roles) or 'nobody'})")
        if not self.clock.synced() and not _any_hour(cfg):
            return Refusal("unsynced", "device clock not synchronized: the granted look-in hours cannot be checked")
        local = self.local()
        if not _inside(cfg, local):
            return Refusal("outside_hours", f"outside the granted look-in hours ({_describe(cfg)})")
        if self.used(night_of(local)) >= cfg.max_per_night:
            return Refusal("used_up", f"the {cfg.max_per_night} look-in(s) granted for tonight are used")
        return None

    def count(self, conn, what: str = "used") -> int:
        """Inside a trust.db write: count one look-in (used or refused) for tonight; returns the new count."""
        key = f"lookin:{what}:{night_of(self.local())}"
        value = int(TrustDB.setting_in(conn, key) or 0) + 1
        TrustDB.put_setting(conn, key, str(value))
        return value

    def status(self) -> dict:
        cfg = self.cfg
        return {**self.plan(cfg), "left": self.left(cfg), "used": self.used(), "refused": self.used(what="refused")}


def _any_hour(cfg: LookinConfig) -> bool:
    """A grant for every hour (the simulation's demo grant) needs no clock to check the hours."""
    return not cfg.times and any(w.all_day() for w in cfg.windows)


def _inside(cfg: LookinConfig, local: datetime) -> bool:
    if cfg.times:
        return any(abs(_seconds_apart(local, t)) <= cfg.tolerance_s for t in cfg.times)
    return any(w.contains(local) for w in cfg.windows)


def _describe(cfg: LookinConfig) -> str:
    if cfg.times:
        return f"{', '.join(cfg.times)} ± {cfg.tolerance_s / 60:g} min"
    return ", ".join(f"{w.start}-{w.end}" for w in cfg.windows) or "none"


def _seconds_apart(local: datetime, hhmm: str) -> float:
    """Signed seconds from the nearest occurrence of HH:MM (yesterday, today or tomorrow)."""
    hour, minute = map(int, hhmm.split(":"))
    today = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    return min(((local - (today + timedelta(days=d))).total_seconds() for d in (-1, 0, 1)), key=abs)

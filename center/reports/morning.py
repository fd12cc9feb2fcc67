"""Morgonrapporten: the day nurse's morning report, as plain data (the JSON format).

Per home: last night's alarm cases with their response times and outcomes; doses taken / late /
missed over the last DOSE_DAYS whole days (to yesterday); motion and bed exits per night; the door opened at night;
device faults and offline periods; and flags against the home's own baseline (baseline.py),
homes that need attention first. html.py renders this data; pdf.py prints that HTML.

Night = the night window (22:00-07:00 by default) in the home's time zone (Europe/Stockholm by
default; the center's config has no per-home zone yet, so one zone serves the report), named by
the date it starts. The report of the morning of D is about the night D-1 -> D.

Sealed data is opened only here, in memory (facts.py, the cases' sealed parts, the resident's
name from the card); the report goes only where the user sends it. This module never writes.
"""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from protocol.messages import iso

from . import baseline
from .facts import Fact, same_component

DOSE_DAYS = 14
HISTORY_NIGHTS = baseline.WEEK_NIGHTS + baseline.BASELINE_NIGHTS
LATE_ARRIVAL_S = 2 * 86400  # events of a night may arrive this long after (an outage): still read
OFFLINE_FLAG_S = 1800  # offline this long during the night is a flag


@dataclass(frozen=True)
class Settings:
    zone: str = "Europe/Stockholm"
    night_start: str = "22:00"
    night_end: str = "07:00"
    outcomes: dict = field(default_factory=dict)  # outcome id -> label (the [cases] config)


class Nights:
    """The night window in one zone: which night a moment belongs to, and a night's bounds."""

    def __init__(self, s: Settings) -> None:
        self.zone = ZoneInfo(s.zone)
        self.start, self.end = time.fromisoformat(s.night_start), time.fromisoformat(s.night_end)
        self.passes_midnight = self.start >= self.end

    def of(self, at: float) -> date | None:
        local = datetime.fromtimestamp(at, self.zone)
        t = local.time()
        if self.passes_midnight:
            if t >= self.start:
                return local.date()
            return local.date() - timedelta(days=1) if t < self.end else None
        return local.date() if self.start <= t < self.end else None

    def bounds(self, night: date) -> tuple[float, float]:
        end_day = night + timedelta(days=1) if self.passes_midnight else night
        return (datetime.combine(night, self.start, self.zone).timestamp(),
                datetime.combine(end_day, self.end, self.zone).timestamp())

    def hours(self) -> tuple[list[int], list[int]]:
        """Local hours of the night on its first day and on the next (a summary counts per hour)."""
        end_h = self.end.hour + (1 if self.end.minute else 0)
        if self.passes_midnight:
            return list(range(self.start.hour, 24)), list(range(end_h))
        return list(range(self.start.hour, end_h)), []

    def local_day(self, at: float) -> date:
        return datetime.fromtimestamp(at, self.zone).date()


def build(store, digests, desk, names, homes: list[str], morning: date, s: Settings, now: float) -> dict:
    """The morning report of `morning` for these homes. digests: digest.DayDigests (the homes'
    facts, opened in memory); desk: the CaseDesk; names(home) -> the resident's name or None."""
    nights = Nights(s)
    last = morning - timedelta(days=1)  # the night that just ended
    first_night = last - timedelta(days=HISTORY_NIGHTS - 1)
    since = min(nights.bounds(first_night)[0], _day_start(nights, morning - timedelta(days=DOSE_DAYS))) - 86400
    night_from, night_to = nights.bounds(last)
    until = min(now, _day_start(nights, morning + timedelta(days=1)))
    cases = _cases(desk, set(homes), night_from, night_to, s)
    offline = _offline(store, set(homes), night_from, night_to)
    out = []
    for home in homes:
        # what has been received by now: a report of a past morning still reads its late arrivals
        facts = [f for f in digests.home_facts(home, since, min(now, until + LATE_ARRIVAL_S), now) if f.at < until]
        out.append(_home(home, names(home), facts, cases.get(home, []), offline.get(home, []),
                         nights, first_night, last, morning))
    out.sort(key=lambda h: (-h["attention"], h["home"]))
    return {"report": "morgonrapport", "date": morning.isoformat(), "zone": s.zone,
            "night": {"start": s.night_start, "end": s.night_end, "from": _iso(night_from), "to": _iso(night_to)},
            "made": _iso(now), "homes": out,
            "needs_attention": sum(1 for h in out if h["flags"])}


def _home(home, name, facts: list[Fact], cases, offline, nights: Nights, first: date, last: date, morning: date) -> dict:
    per_night: dict[date, dict] = {}
    summaries: dict[str, list[int]] = {}
    doses: dict[date, dict] = {}
    faults, open_faults = [], {}
    for f in facts:
        if f.what == "activity":
            summaries[f.data["date"]] = f.data["per_hour"]
        elif f.what == "dose":
            day = nights.local_day(f.at)
            doses.setdefault(day, {"taken": 0, "late": 0, "missed": 0})[f.data["how"]] += 1
        elif f.what in ("bed_exit", "door"):
            night = nights.of(f.at)
            if night is not None and first <= night <= last:
                row = per_night.setdefault(night, {"bed_exits": 0, "doors": 0})
                row["bed_exits" if f.what == "bed_exit" else "doors"] += 1
        elif f.what == "fault":
            entry = {"at": _iso(f.at), "kind": f.data["kind"], "component": f.data["component"],
                     "detail": f.data["detail"], "cleared": None}
            entry["text"] = _fault_words(entry)
            faults.append(entry)
            open_faults[f.data["component"]] = entry
        elif f.what == "fault_cleared":
            for component in [c for c in open_faults if same_component(c, f.data["component"])]:
                open_faults.pop(component)["cleared"] = _iso(f.at)
    evening, early = nights.hours()
    rows = []
    for i in range((last - first).days + 1):
        night = first + timedelta(days=i)
        a, b = summaries.get(night.isoformat()), summaries.get((night + timedelta(days=1)).isoformat())
        activity = (sum(a[h] for h in evening) + sum(b[h] for h in early)) if a and (b or not early) else None
        counts = per_night.get(night, {"bed_exits": 0, "doors": 0})
        rows.append({"night": night.isoformat(), "activity": activity, **counts})
    dose_days = [{"date": day.isoformat(), **doses.get(day, {"taken": 0, "late": 0, "missed": 0})}
                 for day in (morning - timedelta(days=DOSE_DAYS - i) for i in range(DOSE_DAYS))]
    flags = baseline.night_flags(rows)
    dose = baseline.dose_flag(dose_days)
    if dose:
        flags.insert(0, dose)
    quiet = _quiet(summaries, morning)
    if quiet:
        flags.insert(0, quiet)
    for fault in faults:
        if fault["cleared"] is None:
            flags.append({"what": "fault", "severity": 1, "text": f"{_fault_words(fault)} sedan {_when(fault['at'], nights)}"})
    down = sum(p["seconds"] for p in offline)
    if down >= OFFLINE_FLAG_S:
        flags.append({"what": "offline", "severity": 1, "text": f"utan kontakt {_duration(down)} i natt"})
    tonight = rows[-1]
    return {"home": home, "name": name, "attention": sum(f["severity"] for f in flags) * 10 + len(cases),
            "flags": flags, "cases": cases, "last_night": tonight, "nights": rows,
            "doses": {"days": dose_days, **{k: sum(d[k] for d in dose_days) for k in ("taken", "late", "missed")}},
            "faults": faults[-20:], "offline": offline}


def _quiet(summaries: dict[str, list[int]], morning: date) -> dict | None:
    """The latest summarised day (yesterday, or the day before if yesterday's is not in yet)."""
    for back, said in ((1, "i går"), (2, "i förrgår")):
        day = (morning - timedelta(days=back)).isoformat()
        if day in summaries:
            hours = summaries[day]
            active = [h for h, n in enumerate(hours) if n > 0]
            after = (active[-1] + 1) if active else 0
            usual = [sum(v[after:]) for d, v in summaries.items() if d < day][-baseline.BASELINE_NIGHTS:]
            return baseline.quiet_flag(day, hours, sorted(usual)[len(usual) // 2] if usual else 0, said)
    return None


def _cases(desk, homes: set[str], start: float, end: float, s: Settings) -> dict[str, list[dict]]:
    """The night's cases per home: opened inside the night window, oldest first."""
    out: dict[str, list[dict]] = {}
    # by the cases' opened index (a listing since the night would scan a year of cases: ~1 s)
    ids = [r[0] for r in desk.db.query("SELECT id FROM cases WHERE opened >= ? AND opened < ? ORDER BY opened",
                                       (start, end))]
    for case in (desk.get(i) for i in ids):
        if case.home not in homes or not start <= case.opened < end:
            continue
        times = case.to_json()["response_s"]
        out.setdefault(case.home, []).append({
            "id": case.id, "opened": _iso(case.opened), "kinds": case.kinds, "state": case.state,
            "outcome": case.outcome, "outcome_text": s.outcomes.get(case.outcome, case.outcome) if case.outcome else None,
            "accepted_by": case.accepted_by, "note": case.note, "escalations": case.escalation_count,
            "to_accept_s": times["to_accept"], "to_on_site_s": times["to_on_site"], "to_close_s": times["to_close"]})
    return out


def _offline(store, homes: set[str], start: float, end: float) -> dict[str, list[dict]]:
    """Periods in the night a home was not online (offline or silent), from the presence feed."""
    rows = store.db.query("SELECT at, home, ref FROM feed WHERE seq >= ? AND type = 'presence' AND at < ? AND at >= ? "
                          "ORDER BY seq", (_first_seq(store.db, start - 30 * 86400), end, start - 30 * 86400))
    state: dict[str, tuple[str, float]] = {}
    out: dict[str, list[dict]] = {}
    for at, home, ref in rows:
        if home not in homes:
            continue
        was, since = state.get(home, ("online", at))
        if was != "online" and ref == "online" and at > start:
            begin = max(since, start)
            out.setdefault(home, []).append({"from": _iso(begin), "to": _iso(at), "state": was, "seconds": round(at - begin)})
        if ref != was:
            state[home] = (ref, at)
    for home, (was, since) in state.items():
        if was != "online":
            begin = max(since, start)
            out.setdefault(home, []).append({"from": _iso(begin), "to": None, "state": was, "seconds": round(end - begin)})
    return out


def _first_seq(db, at: float) -> int:
    """About the first feed row at or after a time, found by bisecting seq (the feed has one row per
    event, millions a year, and no index on its time); rows append in time order, give or take a
    receiver's batch, so an hour's margin is kept."""
    low, high = 0, (db.one("SELECT MAX(seq) FROM feed") or (0,))[0] or 0
    while low < high:
        mid = (low + high) // 2
        row = db.one("SELECT at FROM feed WHERE seq >= ? ORDER BY seq LIMIT 1", (mid,))
        if row is None or row[0] >= at - 3600:
            high = mid
        else:
            low = mid + 1
    return low


def _day_start(nights: Nights, day: date) -> float:
    return datetime.combine(day, time(0), nights.zone).timestamp()


def _iso(at: float) -> str:
    return iso(datetime.fromtimestamp(at, UTC))


def _when(at_iso: str, nights: Nights) -> str:
    local = datetime.fromisoformat(at_iso).astimezone(nights.zone)
    return f"{local.day} {MONTHS[local.month - 1]} {local:%H:%M}"


def _duration(seconds: float) -> str:
    hours, minutes = divmod(int(seconds) // 60, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


MONTHS = ("jan", "feb", "mars", "april", "maj", "juni", "juli", "aug", "sep", "okt", "nov", "dec")
FAULT_WORDS = {"lock_fault": "fel på dörrlåset", "dispenser_jam": "medicinautomaten har fastnat",
               "dispenser_empty": "medicinautomaten är tom"}


DEVICE_WORDS = {"lock": "dörrlåset", "mat": "sängmattan", "motion": "rörelsesensorn", "dispenser": "medicinautomaten",
                "button": "larmknappen", "camera": "kameran", "contact": "dörrkontakten", "speaker": "högtalaren",
                "health": "hemmets enhet"}


def _fault_words(fault: dict) -> str:
    """What the nurse reads: the device in Swedish, never a driver id alone ("fel på sängmattan")."""
    if fault["kind"] in FAULT_WORDS:
        return FAULT_WORDS[fault["kind"]]
    kind, _, name = (fault["component"] or "").partition(":")
    if kind in DEVICE_WORDS:
        return f"fel på {DEVICE_WORDS[kind]}" + (f" ({name})" if name else "")
    return f"fel på {fault['component'] or 'en enhet'}"


def report(cfg, morning: date, home: str | None, s: Settings, now: float, keep: bool = True) -> dict:
    """The morning report from a center config: the store, the center's keys, the enrolled homes.

    keep=False writes nothing at all to the store (no day digests kept: slower next time)."""
    from base.clock import SystemClock

    from .. import keyring
    from ..atrest import Sealer, center_keys
    from ..homes import HomeRegistry
    from ..opening import Opener
    from ..residents import RESIDENT_CONTEXT, Residents
    from ..service import case_desk
    from ..store import EventStore
    from .digest import DayDigests

    if home is not None:
        keyring.enrolled_home(cfg, home)  # TryggError naming what is wrong with HOME
    registry = HomeRegistry(cfg.center.homes_dir)
    homes = [home] if home else sorted(registry.keys)
    keys = center_keys(cfg)
    store = EventStore(cfg.store_url)
    try:
        opener = Opener(registry, [k.kem for k in keys], None, SystemClock())
        digests = DayDigests(store, opener, keys, s.zone, keep=keep)
        residents = Residents(store.db, Sealer(keys, RESIDENT_CONTEXT))

        def names(h: str) -> str | None:
            return (residents.get(h) or {}).get("name")
        out = build(store, digests, case_desk(cfg, store, keys), names, homes, morning, s, now)
        digests.flush()
        out["opened"] = dict(digests.opened)
        return out
    finally:
        store.close()

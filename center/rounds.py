"""Look-in rounds: tonight's agreed look-ins per home, and when a person must go instead.

When a look-in fails, a person goes. For each agreed look-in time of a home's plan this
module says where the slot stands: upcoming, due (from the time minus the tolerance), seen,
not seen (look again after retry_after), retry due, or visit needed — not seen on retry, the
look-in failed, nobody looked in time, or the home or its camera was down while the slot was
open. A "night" runs noon to noon in the home's time zone (protocol.names.night_of, the rule the
device counts look-ins by).

Pure rules only: the caller passes the plan, the staff's records, what it knows about the
home and the time. No I/O, no clock, no storage (roundsdesk.py owns those), so every
transition is testable with a fake clock.
"""

import zoneinfo
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Mapping


from base.configbase import check_hhmm
from base.errors import TryggError
from protocol.names import STAFF_NAME_RE, night_of
from protocol.lookin import LookinPlan, parse_plan  # noqa: F401 - the plan is the protocol's

STATES = ("upcoming", "due", "seen", "not_seen", "retry_due", "visit_needed")
OPEN = ("due", "not_seen", "retry_due")  # a look-in is expected now: the home must be reachable
ALERTS = {"due": ("lookin_due", "event"), "retry_due": ("lookin_retry", "event"),
          "visit_needed": ("visit_needed", "alarm")}  # state -> (alert kind, class)
VERDICTS = ("seen", "not_seen", "failed")  # failed: the device reported the look-in itself failed
STAFF_NAME = STAFF_NAME_RE


class RoundsError(TryggError, ValueError):
    """A verdict that cannot be recorded (no plan, no slot open now, unknown slot)."""


def tonight(plan: LookinPlan, now: datetime) -> str:
    return night_of(now.astimezone(plan.zone))


def slot_moment(night: str, hhmm: str, zone: zoneinfo.ZoneInfo) -> datetime:
    """When HH:MM happens in the night named by its evening's date, in UTC.

    Times before noon belong to the morning after. A time the spring change skips (02:30)
    is read with the offset before the change, so it happens an hour later on the clock
    (03:30); a time the autumn change repeats is its first occurrence.
    """
    day = date.fromisoformat(night) + timedelta(days=0 if hhmm >= "12:00" else 1)
    return datetime.combine(day, time.fromisoformat(hhmm), tzinfo=zone).astimezone(timezone.utc)


@dataclass(frozen=True)
class Record:
    """One verdict on one slot: staff saw the resident or not, or the device said it failed."""

    slot: str
    verdict: str
    staff: str
    at: datetime
    reason: str = ""


@dataclass(frozen=True)
class Known:
    """What the center knows about the home right now. reachable None: not known here (the
    CLI has no live presence); visits: slot -> reason of a visit already called tonight."""

    reachable: bool | None = None
    camera_fault: str | None = None
    visits: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Slot:
    home: str
    night: str
    time: str  # HH:MM local, as agreed
    at: datetime  # the agreed moment, UTC
    zone: str
    state: str
    reason: str = ""
    next: str = ""  # what staff do next ("look in by"), with next_at
    next_at: datetime | None = None
    by: str = ""  # who recorded the last verdict

    def local(self, moment: datetime | None) -> str:
        return moment.astimezone(zoneinfo.ZoneInfo(self.zone)).strftime("%H:%M") if moment else ""

    @property
    def next_text(self) -> str:
        return f"{self.next} {self.local(self.next_at)}".strip()


@dataclass(frozen=True)
class Alert:
    """A slot's state that staff must be shown once: lookin_due, lookin_retry or visit_needed."""

    kind: str
    cls: str
    slot: Slot
    time: datetime
    clock_synced: bool = True  # the center's clock, as events carry the device's


def alert_for(slot: Slot, now: datetime) -> Alert | None:
    if slot.state not in ALERTS:
        return None
    kind, cls = ALERTS[slot.state]
    return Alert(kind, cls, slot, now)


def slots(home: str, plan: LookinPlan, night: str, records: list[Record], known: Known, now: datetime,
          retry_after_s: float) -> list[Slot]:
    """Every agreed look-in of the night, in the order they happen; records oldest first."""
    if not plan.has_rounds:
        return []
    zone = plan.zone
    moments = sorted((slot_moment(night, t, zone), t) for t in set(plan.times))
    return [_slot(home, night, hhmm, at, plan, [r for r in records if r.slot == hhmm], known, now,
                  timedelta(seconds=retry_after_s)) for at, hhmm in moments]


def _slot(home, night, hhmm, at, plan, records, known, now, retry_after) -> Slot:
    def make(state, reason="", next_="", next_at=None):
        return Slot(home, night, hhmm, at, plan.timezone, state, reason, next_, next_at,
                    records[-1].staff if records else "")

    visit, not_seen_at = None, None
    for r in records:
        if r.verdict == "seen":  # the resident was seen (by camera or in person): the slot is done
            return make("seen")
        if r.verdict == "failed":
            visit = visit or f"look-in failed: {r.reason or 'no reason given'}"
        elif not_seen_at is None:
            not_seen_at = r.at
        else:
            visit = visit or "not seen on retry"
    visit = visit or known.visits.get(hhmm)
    if visit:
        return make("visit_needed", visit, "go in person")
    tolerance = timedelta(seconds=plan.tolerance_s)
    if not_seen_at is not None:
        retry_at = not_seen_at + retry_after
        if now < retry_at:
            slot = make("not_seen", next_="look again at", next_at=retry_at)
        elif now < retry_at + tolerance:
            slot = make("retry_due", next_="look again by", next_at=retry_at + tolerance)
        else:
            return make("visit_needed", "retry not done in time", "go in person")
    elif now < at - tolerance:
        return make("upcoming", next_="due at", next_at=at - tolerance)
    elif now < at + tolerance:
        slot = make("due", next_="look in by", next_at=at + tolerance)
    else:
        return make("visit_needed", "look-in not done in time", "go in person")
    if known.reachable is False:
        return make("visit_needed", "home unreachable", "go in person")
    if known.camera_fault is not None:
        return make("visit_needed", f"camera fault: {known.camera_fault}" if known.camera_fault else "camera fault",
                    "go in person")
    return slot


def refusal(slot: Slot, verdict: str) -> str | None:
    """Why staff cannot record this verdict on this slot now, or None when they can."""
    if slot.state == "upcoming":
        return f"the {slot.time} look-in is not due yet (due at {slot.local(slot.next_at)})"
    if slot.state == "seen":
        return f"the {slot.time} look-in is already recorded as seen"
    if verdict == "not_seen" and slot.state == "visit_needed":
        return f"a physical visit is already needed for the {slot.time} look-in ({slot.reason})"
    return None


def pick(all_slots: list[Slot], verdict: str, wanted: str | None) -> Slot:
    """The slot a verdict is for: the given HH:MM, or the one open now; RoundsError otherwise."""
    if wanted is not None:
        try:
            check_hhmm(wanted)
        except ValueError as exc:
            raise RoundsError(f"--slot {wanted!r}: {exc}") from None
        found = [s for s in all_slots if s.time == wanted]
        if not found:
            raise RoundsError(f"--slot {wanted}: not an agreed look-in time tonight "
                              f"(agreed: {', '.join(s.time for s in all_slots)})")
        why = refusal(found[0], verdict)
        if why:
            raise RoundsError(why)
        return found[0]
    open_ = [s for s in all_slots if refusal(s, verdict) is None]
    if len(open_) > 1:
        raise RoundsError(f"several look-ins are open ({', '.join(s.time for s in open_)}): give --slot HH:MM")
    if not open_:
        later = [s for s in all_slots if s.state == "upcoming"]
        hint = f" (next: {later[0].time}, due at {later[0].local(later[0].next_at)})" if later else ""
        raise RoundsError(f"no look-in is due now{hint}")
    return open_[0]

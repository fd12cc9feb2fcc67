"""The rounds desk: what the center keeps about look-in rounds, and which alerts are new.

Takes in what homes send (their look-in plan, camera faults, failed look-ins) and what staff
record (seen / not seen), keeps it in center.db sealed to the center's own key, and asks
rounds.py where each slot stands. It never decides a slot's state itself and never prints.
Every stored content is sealed with the envelope (signed and encrypted by the center key) and
bound to its home, night and slot, so center.db holds no plaintext about who was seen when or
what a home's plan is; the plaintext columns are routing only. An alert is marked shown only
after the caller has shown it, so a receiver restart neither loses nor repeats one.

Thread-safe: the receiver feeds events from its MQTT thread and asks for alerts from its
rounds thread; the desk owns its own connection to center.db.
"""

import logging
import math
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from base.keys import Identity
from protocol.messages import EventMessage

from . import rounds
from .atrest import Sealer, center_keys  # noqa: F401 (center_keys: where callers found it)
from .rounds import OPEN, STAFF_NAME, Alert, Known, LookinPlan, Record, RoundsError, Slot
from .store import EventStore

log = logging.getLogger(__name__)
ROUNDS_CONTEXT = "trygg-center/v1/lookin/"
Reachable = Callable[[str], bool | None]


def _text(value: object, limit: int = 200) -> str:
    """Network text shown on a staff console: printable only (no forged extra lines), bounded."""
    return "".join(c if c.isprintable() else " " for c in value[:limit]) if isinstance(value, str) else ""


@dataclass
class _Home:
    plan: LookinPlan | None = None
    plan_time: float = -math.inf  # device time of the plan we hold: an older one re-sent is ignored
    fault: str | None = None
    camera_time: float = -math.inf


class RoundsDesk:
    def __init__(self, store: EventStore, keys: list[Identity], retry_after_s: float) -> None:
        self._store, self._keys, self.retry_after_s = store, keys, retry_after_s
        self._sealer = Sealer(keys, ROUNDS_CONTEXT)
        self._lock = threading.RLock()
        self._homes: dict[str, _Home] = {}
        self._nights: dict[str, tuple[dict, dict]] = {}  # night -> (records by home, shown alerts by home)
        self._version: tuple | None = None
        self._load_homes()

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> "RoundsDesk":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- what homes send ---------------------------------------------------------------------
    @staticmethod
    def wants(event: EventMessage) -> bool:
        body = event.body
        return (event.kind == "lookin_plan"
                or (event.kind in ("fault", "fault_cleared") and body.get("component") == "camera")
                or (event.kind == "command_result" and body.get("action") == "lookin"))

    def observe(self, event: EventMessage, received: float) -> None:
        """Take in a plan, camera fault or look-in result; ValueError for a plan that is not valid."""
        if not self.wants(event):
            return
        home, body, stamp = event.home, event.body, event.time.timestamp()
        with self._lock:
            if event.kind == "lookin_plan":
                plan = rounds.parse_plan(body)
                h = self._homes.setdefault(home, _Home())
                if stamp > h.plan_time:
                    self._store.put_lookin_home(home, "plan", self._seal(f"plan/{home}", {"plan": body, "time": stamp}))
                    h.plan, h.plan_time = plan, stamp
            elif event.kind in ("fault", "fault_cleared"):
                h = self._homes.setdefault(home, _Home())
                if stamp > h.camera_time:  # a backlog can deliver a fault after the newer clearing
                    fault = _text(body.get("detail")) if event.kind == "fault" else None
                    sealed = self._seal(f"camera/{home}", {"fault": fault, "time": stamp})
                    self._store.put_lookin_home(home, "camera", sealed)
                    h.fault, h.camera_time = fault, stamp
            elif body.get("outcome") == "failed":
                at = event.time if event.clock_synced else datetime.fromtimestamp(received, timezone.utc)
                self._failed(home, _text(body.get("staff"), 63), _text(body.get("reason")), at)

    def _failed(self, home: str, staff: str, reason: str, at: datetime) -> None:
        """A look-in the device could not do: the slot open at that moment needs a visit."""
        h = self._homes.get(home)
        if h is None or h.plan is None or not h.plan.has_rounds:
            return
        night = rounds.tonight(h.plan, at)
        with self._store.writing():
            records = self._read_records(night).get(home, [])
            open_ = [s for s in rounds.slots(home, h.plan, night, records, Known(), at, self.retry_after_s)
                     if s.state in OPEN]
            if not open_:
                log.info("rounds: failed look-in at %s outside any open slot: not part of the rounds", home)
                return
            slot = min(open_, key=lambda s: abs((s.at - at).total_seconds()))
            self._add(home, night, Record(slot.time, "failed", staff if STAFF_NAME.match(staff) else "unknown", at,
                                          reason or "no reason given"))
        self._nights.pop(night, None)

    # -- what staff record -------------------------------------------------------------------
    def record(self, home: str, verdict: str, staff: str, now: datetime, slot: str | None = None) -> Slot:
        """Record seen / not_seen for the slot open now (or the given HH:MM); returns the slot after it."""
        if verdict not in ("seen", "not_seen"):
            raise ValueError(f"verdict must be seen or not_seen, got {verdict!r}")
        with self._lock:
            h = self._homes.get(home)
            if h is None or h.plan is None:
                raise RoundsError(f"home {home} has sent no look-in plan: it has no rounds here")
            if not h.plan.has_rounds:
                raise RoundsError(f"home {home} has no agreed look-in times (camera: {h.plan.camera})")
            night = rounds.tonight(h.plan, now)
            with self._store.writing():  # decide on the records as they are on disk, no writer between
                records = self._read_records(night).get(home, [])
                known = Known(None, h.fault, self._visits(self._read_alerts(night), home))
                target = rounds.pick(rounds.slots(home, h.plan, night, records, known, now, self.retry_after_s),
                                     verdict, slot)
                new = Record(target.time, verdict, staff, now)
                self._add(home, night, new)
            self._nights.pop(night, None)
            after = rounds.slots(home, h.plan, night, records + [new], known, now, self.retry_after_s)
            return next(s for s in after if s.time == target.time)

    def _add(self, home: str, night: str, record: Record) -> None:
        data = {"verdict": record.verdict, "staff": record.staff, "at": record.at.timestamp(), "reason": record.reason}
        sealed = self._seal(f"record/{home}/{night}/{record.slot}", data)
        self._store.add_lookin_record(home, night, record.slot, sealed)

    # -- where the rounds stand --------------------------------------------------------------
    def tonight(self, now: datetime, reachable: Reachable = lambda home: None) -> list[Slot]:
        """Every home's slots of its current night, by home then time."""
        with self._lock:
            out, used = [], set()
            for home in sorted(self._homes):
                h = self._homes[home]
                if h.plan is None or not h.plan.has_rounds:
                    continue
                night = rounds.tonight(h.plan, now)
                used.add(night)
                records, alerts = self._night(night)
                known = Known(reachable(home), h.fault, self._visits(alerts, home))
                out += rounds.slots(home, h.plan, night, records.get(home, []), known, now, self.retry_after_s)
            for night in set(self._nights) - used:  # yesterday's nights are done with
                del self._nights[night]
            return out

    def new_alerts(self, now: datetime, reachable: Reachable = lambda home: None) -> list[Alert]:
        """Alerts the slots call for now that were never shown (mark_shown once shown)."""
        with self._lock:
            out = []
            for slot in self.tonight(now, reachable):
                alert = rounds.alert_for(slot, now)
                if alert and (slot.time, alert.kind) not in self._night(slot.night)[1].get(slot.home, {}):
                    out.append(alert)
            return out

    def mark_shown(self, alert: Alert, also=None) -> bool:
        """Raise an alert: recorded with its feed row (and what `also` adds in that transaction);
        False when another receiver raised it first."""
        s = alert.slot
        with self._lock:
            sealed = self._seal(f"alert/{s.home}/{s.night}/{s.time}/{alert.kind}", {"reason": s.reason})
            raised = self._store.mark_lookin_alert(s.home, s.night, s.time, alert.kind, sealed,
                                                   alert.time.timestamp(), also)
            self._night(s.night)[1].setdefault(s.home, {})[(s.time, alert.kind)] = s.reason
            return raised

    @staticmethod
    def _visits(alerts: dict, home: str) -> dict[str, str]:
        """Visits already called tonight: they stand even when the home or camera is back."""
        return {slot: reason for (slot, kind), reason in alerts.get(home, {}).items() if kind == "visit_needed"}

    # -- storage -----------------------------------------------------------------------------
    def _night(self, night: str) -> tuple[dict, dict]:
        version = self._store.rounds_version()
        if version != self._version:  # a verdict or alert recorded elsewhere: read the nights again
            self._nights.clear()
            self._version = version
        if night not in self._nights:
            self._nights[night] = (self._read_records(night), self._read_alerts(night))
        return self._nights[night]

    def _read_records(self, night: str) -> dict[str, list[Record]]:
        out: dict[str, list[Record]] = {}
        for home, slot, sealed in self._store.lookin_records(night):
            data = self._open(f"record/{home}/{night}/{slot}", sealed)
            if data is not None:
                at = datetime.fromtimestamp(data["at"], timezone.utc)
                out.setdefault(home, []).append(Record(slot, data["verdict"], data["staff"], at, data["reason"]))
        return out

    def _read_alerts(self, night: str) -> dict[str, dict[tuple[str, str], str]]:
        out: dict[str, dict[tuple[str, str], str]] = {}
        for home, slot, kind, sealed in self._store.lookin_alerts(night):
            data = self._open(f"alert/{home}/{night}/{slot}/{kind}", sealed)
            # shown even if it no longer opens: never alert twice; a visit stands with a generic reason
            out.setdefault(home, {})[(slot, kind)] = (data or {}).get("reason") or "visit called"
        return out

    def _load_homes(self) -> None:
        for home, plan, camera in self._store.lookin_homes():
            h = self._homes.setdefault(home, _Home())
            data = self._open(f"plan/{home}", plan) if plan else None
            try:
                if data is not None:
                    h.plan, h.plan_time = rounds.parse_plan(data["plan"]), data["time"]
            except ValueError as exc:  # stored by an older version with other rules: wait for the next plan
                log.error("rounds: stored plan of %s is no longer valid, ignored: %s", home, exc)
            data = self._open(f"camera/{home}", camera) if camera else None
            if data is not None:
                h.fault, h.camera_time = data["fault"], data["time"]

    def _seal(self, context: str, data: dict) -> bytes:
        return self._sealer.seal(context, data)

    def _open(self, context: str, sealed: bytes) -> dict | None:
        return self._sealer.open(context, sealed)

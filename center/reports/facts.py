"""The few facts the morning report needs from a home's events, opened in memory only.

The store keeps every event sealed as received (docs/operations.md, "What the store holds"): the
kind and body are inside the envelope. This module opens a home's recorded events with the
center's keys (opening.Opener: the same checks a view makes) and keeps, per event, only what the
report counts: a bed exit, a door opened, a dose taken / late / missed, a day's motion per hour,
a device fault and its clearing, an inactivity alarm. Nothing opened is ever written anywhere;
an event that does not open is skipped (the receiver reported it when it came).

Times are the device's own (event.time) when its clock was synchronized, else when we received
it: after an outage a bed exit at 02:00 arrives at 09:00, and still belongs to the night.
"""

import json
import logging
from dataclasses import dataclass

from base.errors import TryggError
from protocol import envelope

log = logging.getLogger(__name__)

FAULT_KINDS = ("fault", "lock_fault", "dispenser_jam", "dispenser_empty")


@dataclass(frozen=True)
class Fact:
    what: str  # bed_exit | door | dose | activity | fault | fault_cleared | inactivity
    at: float  # epoch seconds (device time when synchronized)
    data: dict


def fact_of(event, received: float) -> Fact | None:
    """The report's fact in one opened event, or None when the report does not count it."""
    at = event.time.timestamp() if event.clock_synced else received
    kind, body = event.kind, event.body or {}
    if event.cls == "test":
        return None
    if kind == "bed_exit":
        return Fact("bed_exit", at, {})
    if kind == "door_open":
        return Fact("door", at, {"by": body.get("by")})
    if kind == "dose_taken":
        return Fact("dose", at, {"how": "late" if body.get("late") else "taken", "dose": body.get("dose")})
    if kind == "dose_missed":
        return Fact("dose", at, {"how": "missed", "dose": body.get("dose")})
    if kind == "activity_summary":
        hours = body.get("per_hour")
        if isinstance(hours, list) and len(hours) == 24 and isinstance(body.get("date"), str):
            return Fact("activity", at, {"date": body["date"], "per_hour": [int(h or 0) for h in hours]})
        return None
    if kind in FAULT_KINDS:
        return Fact("fault", at, {"kind": kind, "component": body.get("component") or _component(kind, body),
                                  "detail": str(body.get("detail") or "")[:200]})
    if kind == "fault_cleared":
        return Fact("fault_cleared", at, {"component": body.get("component") or ""})
    if kind == "inactivity":
        return Fact("inactivity", at, {"quiet_s": body.get("quiet_s")})
    return None


def _component(kind: str, body: dict) -> str:
    """The component a driver's own fault kind names, as its fault_cleared names it.

    A lock's fault (drivers/lock.py: lock_fault) carries no "component"; the driver's emit puts its
    own name under its kind ({"lock": "front-door"}), and its fault_cleared says "lock:front-door"
    (drivers/base.py: Driver.component = kind:name). So the fault is named the same way here, or a
    cleared lock fault would stay open in the report for ever."""
    driver = {"lock_fault": "lock", "dispenser_jam": "dispenser", "dispenser_empty": "dispenser"}.get(kind, "")
    name = body.get(driver) if driver else None
    return f"{driver}:{name}" if driver and isinstance(name, str) and name else driver


def same_component(fault: str, cleared: str) -> bool:
    """A clearing clears a fault of the same component; a fault kept in an older digest named only
    the driver kind ("lock"), so it is cleared by any "lock:NAME"."""
    return bool(cleared) and (fault == cleared or fault == cleared.partition(":")[0])


COUNTED_KINDS = frozenset({"bed_exit", "door_open", "dose_taken", "dose_missed", "activity_summary", "fault_cleared",
                           "inactivity", *FAULT_KINDS})  # every kind fact_of keeps; the rest is never used


class _Unchecked:
    """Stands in for the home's own key while the envelope is only being looked into: the
    signature is not checked (nothing of the event is used unless it is checked later)."""

    @staticmethod
    def verify(signature: bytes, data: bytes) -> None:
        return None


def _kind_inside(opener, row, home_key) -> str | None:
    """The kind of a recorded event, from its opened envelope before the signature is checked;
    None when that does not work (then the full open decides and says why)."""
    try:
        opened = envelope.open_sealed(row.envelope, row.topic, opener.opening, home_key)
        data = json.loads(opened.body)
    except (TryggError, ValueError):
        return None
    kind = data.get("kind") if isinstance(data, dict) else None
    return kind if isinstance(kind, str) else None


def open_facts(store, opener, home: str, ids: list[str], counts: dict | None = None, rows=None) -> list[Fact]:
    """The counted facts of these recorded events of one home (opened in memory, then dropped).

    Most of what a home sends is telemetry the report never counts (device_health every 15
    minutes: ~100 of a home's ~110 envelopes a day), and the readable columns cannot tell it
    from the motion summary (same class, same topic, the same padded size: protocol/padding.py).
    So each envelope is first only opened (HPKE, ~50 us): one of a kind the report never counts
    is dropped there, unverified and unused; every other one is opened again the full way
    (Opener.open_event: signature, home and class checks, ~250 us) before a fact is taken. A
    forged envelope can at most be skipped, never counted. counts: "verified", "skipped"; rows:
    the recorded events themselves (store.Received), read already, instead of ids."""
    counts = counts if counts is not None else {}
    facts = []
    signer, known = opener.homes.signer_for(home), {}

    def home_key(kid: bytes):  # the home's own key id, looked up once (it hashes the key) per call
        if kid not in known:
            known[kid] = signer(kid) is not None
        return _Unchecked if known[kid] else None
    for row in rows if rows is not None else store.events(ids).values():
        if row.home != home:
            continue
        kind = _kind_inside(opener, row, home_key)
        if kind is not None and kind not in COUNTED_KINDS:
            counts["skipped"] = counts.get("skipped", 0) + 1
            continue
        counts["verified"] = counts.get("verified", 0) + 1
        try:
            event = opener.open_event(row.envelope, row.topic, open_audit=False)
        except (TryggError, ValueError) as exc:
            log.debug("event %s of %s does not open: %s", row.id, home, exc)
            continue
        fact = fact_of(event, row.received)
        if fact is not None:
            facts.append(fact)
    return facts

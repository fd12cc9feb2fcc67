"""How a view prints: readable lines in the staff's language, or JSON lines with --json.

With --json, stdout carries one JSON object per event (`type` "event": id, home, class, kind,
time, clock_synced, received, body), per case change (`type` "case": the case's fields and
`change`) and per rounds alert (`type` "lookin"), and nothing else, so scripts can parse every
line; presence, card state, receivers and rejected-message summaries go to stderr as JSON
objects with a `type`. Readable lines lead with the center's received time; the device's own
time is added when its clock is unsynchronized or more than a minute off. Alarms stand out
(bold red on a terminal, the bell with --bell).
"""

import json
import sys
import threading
from datetime import datetime, timezone
from typing import TextIO

from protocol.ids import new_id
from protocol.messages import EventMessage, iso

from .cases import Case
from .console import summary
from .wording import Words

CLOCK_OFF_S = 60.0
_LOUD_CHANGES = ("opened", "alarm", "escalated", "on_call", "overdue")


def _local(at: float) -> str:
    return datetime.fromtimestamp(at).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _iso(at: float | None) -> str | None:
    return iso(datetime.fromtimestamp(at, timezone.utc)) if at is not None else None


class Printer:
    def __init__(self, as_json: bool, words: Words, out: TextIO | None = None, err: TextIO | None = None,
                 color: bool | None = None, bell: bool = False, on_call: list[str] | tuple = ()) -> None:
        self.as_json = as_json
        self.on_call = list(on_call)  # who a TO ON-CALL line names ([cases] on_call)
        self.w = words
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.color = self.out.isatty() if color is None else color
        self.bell = bell
        self._lock = threading.Lock()

    # -- events --------------------------------------------------------------------------------
    def event(self, event: EventMessage, received: float) -> None:
        if self.as_json:
            return self._json(self.out, {
                "type": "event", "id": event.id, "home": event.home, "class": event.cls, "kind": event.kind,
                "time": iso(event.time), "clock_synced": event.clock_synced,
                "received": _iso(received), "body": event.body})
        device_time = event.time.timestamp()
        note = ""
        if not event.clock_synced or abs(device_time - received) > CLOCK_OFF_S:
            note = f"  [{self.w['device_time']} {_local(device_time)}"
            note += f", {self.w['unsynced']}]" if not event.clock_synced else "]"
        loud = event.cls == "alarm"
        mark = {"alarm": "LARM" if self.w.lang == "sv" else "ALARM", "test": "TEST"}.get(event.cls, "     ")
        details = summary(event.kind, event.body)
        line = f"{_local(received)}  {mark:5}  {event.home}  {self.w.kind(event.kind)}  {details}{note}"
        self._line(line, loud)

    # -- cases -----------------------------------------------------------------------------------
    def case(self, case: Case, change: str) -> None:
        to_on_call = self.on_call if change.startswith("on_call") else None
        if self.as_json:
            return self._json(self.out, {"type": "case", "change": change, **case.to_json(),
                                         **({"on_call": to_on_call} if to_on_call is not None else {})})
        kinds = ", ".join(self.w.kind(k) for k in case.kinds)
        who = case.on_site_by if case.state == "on_site" else case.accepted_by
        extra = f"  ({case.outcome})" if case.state == "closed" and case.outcome else ""
        told = ""
        if change == "help_coming" and case.help_coming:
            told = f"  – {self.w['help_coming']}: {case.help_coming.get('outcome')}"
        if to_on_call:
            told += f"  – {self.w['on_call_staff']}: {', '.join(to_on_call)}"
        line = (f"{_local(case.updated)}  {self.w.change(change)}  {case.home}  {kinds}  – "
                f"{self.w.state(case.state, who)}{extra}{told}  [{self.w['case']} {case.id}]")
        self._line(line, change.partition(":")[0] in _LOUD_CHANGES or change == "open_now")

    # -- homes and receivers (stderr with --json) ------------------------------------------------
    def presence(self, home: str, state: str, at: float | None, snapshot: bool = False) -> None:
        if self.as_json:
            return self._json(self.err, {"type": "presence", "home": home, "state": state, "time": _iso(at),
                                         "snapshot": snapshot})
        since = f"  ({_local(at)})" if at and snapshot else ""
        self._line(f"{_local(at) if at and not snapshot else '':19}  {self.w['home']}  {home}  "
                   f"{self.w.presence(state)}{since}", state in ("offline", "silent"))

    def storage(self, home: str, state: str, free_bytes: int | None, at: float) -> None:
        free = None if free_bytes is None else round(free_bytes / 1048576, 1)
        if self.as_json:
            return self._json(self.err, {"type": "storage", "home": home, "state": state, "free_mib": free,
                                         "time": _iso(at)})
        self._line(f"{_local(at)}  {self.w['home']}  {home}  {self.w['card']}: STORAGE {state.upper()} "
                   f"({free if free is not None else '?'} MiB)", state != "ok")

    def lookin(self, home: str, night: str, slot: str, alert: str, reason: str, at: float) -> None:
        cls = "alarm" if alert == "visit_needed" else "event"
        if self.as_json:
            return self._json(self.out, {
                "type": "lookin", "id": new_id(), "home": home, "class": cls, "kind": alert, "time": _iso(at),
                "clock_synced": True, "received": _iso(at), "body": {"slot": slot, "night": night, "reason": reason}})
        self._line(f"{_local(at)}  {self.w.kind(alert)}  {home}  {slot}  {reason}", cls == "alarm")

    def receiver(self, name: str, state: str) -> None:
        if self.as_json:
            return self._json(self.err, {"type": "receiver", "name": name, "state": state})
        self._line(f"{'':19}  {self.w['receiver']} {name}: {state}", state != "connected")

    def no_receiver(self) -> None:
        if self.as_json:
            return self._json(self.err, {"type": "receiver", "state": "none"})
        self._line(self.w["no_receiver"], True)

    def rejected_summary(self, home: str | None, count: int, reason: str, at: float) -> None:
        if self.as_json:
            return self._json(self.err, {"type": "rejected", "home": home, "count": count, "reason": reason,
                                         "time": _iso(at)})
        self._line(f"{_local(at)}  {self.w['rejected']}: {count} ({home or '?'}): {reason}", False)

    # -- writing whole lines ---------------------------------------------------------------------
    def _json(self, stream: TextIO, record: dict) -> None:
        self._write(stream, json.dumps(record, ensure_ascii=False))

    def _line(self, line: str, loud: bool) -> None:
        if loud and self.color:
            line = f"\033[1;31m{line}\033[0m"
        if loud and self.bell:
            line += "\a"
        self._write(self.out, line)

    def _write(self, stream: TextIO, line: str) -> None:
        with self._lock:
            stream.write(line + "\n")
            stream.flush()

"""How the night-staff console shows events: a readable line by default, JSON lines with --json.

With --json, stdout carries one JSON object per event (id, home, class, kind, time,
clock_synced, received, body) and nothing else, so scripts can parse every line; presence
changes, rejected messages and the receiver's own link state go to stderr as JSON objects
with a "type" field ("presence", "rejected", "receiver"). Look-in rounds alerts go to stdout,
shaped like events with "type": "lookin" and a fresh id each time one is shown.
"""

import json
import sys
import threading
from datetime import datetime, timezone
from typing import TextIO

from protocol.ids import new_id
from protocol.messages import EventMessage, iso

from .rounds import Alert, Slot

_MARK = {"alarm": "ALARM", "event": "event", "telemetry": "telem"}


def summary(kind: str, body: dict) -> str:
    """One readable line for an event body; commands and audit entries get their own wording."""
    if kind == "command_result":
        target = f" {body['lock']}" if "lock" in body else ""
        reason = f" - {body['reason']}" if body.get("reason") else ""
        return f"{body.get('action')}{target} by {body.get('staff')} ({body.get('role')}): {str(body.get('outcome')).upper()}{reason}"
    if kind == "lookin_plan":
        hours = (", ".join(map(str, body.get("times") or [])) + f" ± {float(body.get('tolerance_s') or 0) / 60:g} min"
                 if body.get("times") else ", ".join(f"{w.get('start')}-{w.get('end')}" for w in body.get("windows") or []
                                                     if isinstance(w, dict)) or "none")
        return (f"camera {body.get('camera')}, {body.get('privacy')}, at most {body.get('max_per_night')} a night "
                f"at {hours}, for {', '.join(map(str, body.get('roles') or [])) or 'nobody'}")
    if kind == "audit":
        detail = body.get("detail") if isinstance(body.get("detail"), dict) else {}
        shown = " ".join(f"{k}={v}" for k, v in detail.items() if v not in (None, "") and k not in ("bytes", "config_sha256"))
        return f"#{body.get('seq')} {body.get('kind')} {shown}"
    return " ".join(f"{k}={v}" for k, v in body.items())


def alert_line(alert: Alert) -> str:
    """`PHYSICAL VISIT NEEDED  home-7  23:00 look-in: not seen on retry`"""
    s = alert.slot
    if alert.kind == "visit_needed":
        return _visit_line(s)
    if alert.kind == "lookin_retry":
        return f"LOOK AGAIN  {s.home}  {s.time} look-in: not seen, {s.next_text}"
    return f"LOOK-IN DUE  {s.home}  {s.time} look-in: {s.next_text}"


def _visit_line(slot: Slot) -> str:
    return f"PHYSICAL VISIT NEEDED  {slot.home}  {slot.time} look-in: {slot.reason}"


def slot_line(slot: Slot) -> str:
    """One line of `trygg center rounds`: home, slot, state, what next."""
    state = "VISIT NEEDED" if slot.state == "visit_needed" else slot.state.replace("_", " ")
    then = {"seen": f"by {slot.by}", "visit_needed": f"go in person: {slot.reason}"}.get(slot.state, slot.next_text)
    return f"{slot.home:16}  {slot.time}  {state:12}  {then}"


def verdict_line(slot: Slot) -> str:
    """What happens after staff recorded a verdict (`trygg center seen / not-seen`)."""
    if slot.state == "visit_needed":
        return _visit_line(slot)
    if slot.state == "seen":
        return f"{slot.home}  {slot.time} look-in: seen (recorded by {slot.by})"
    return f"{slot.home}  {slot.time} look-in: not seen (recorded by {slot.by}); {slot.next_text}"


def slot_json(slot: Slot) -> dict:
    return {"home": slot.home, "night": slot.night, "slot": slot.time, "at": iso(slot.at), "state": slot.state,
            "reason": slot.reason, "next": slot.next, "next_at": iso(slot.next_at) if slot.next_at else None,
            "by": slot.by}


class Console:
    def __init__(self, as_json: bool = False, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.as_json = as_json
        self.out = out or sys.stdout
        self.err = err or sys.stderr

    def event(self, message: EventMessage, received: float) -> None:
        got = datetime.fromtimestamp(received, timezone.utc)
        if self.as_json:
            record = {
                "type": "event",
                "id": message.id,
                "home": message.home,
                "class": message.cls,
                "kind": message.kind,
                "time": iso(message.time),
                "clock_synced": message.clock_synced,
                "received": iso(got),
                "body": message.body,
            }
            self._write(self.out, json.dumps(record, ensure_ascii=False))
            return
        local = message.time.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        clock = "" if message.clock_synced else " (device clock not synchronized)"
        details = summary(message.kind, message.body)
        self._write(self.out, f"{local}{clock}  {_MARK[message.cls]:5}  {message.home}  {message.kind}  {details}  [{message.id}]")

    def presence(self, home: str, state: str) -> None:
        now = datetime.now(timezone.utc)
        if self.as_json:
            self._write(self.err, json.dumps({"type": "presence", "home": home, "state": state, "time": iso(now)}))
        else:
            note = {"silent": "  -- no heartbeat: check the home's link or visit"}.get(state, "")
            self._write(self.out, f"{now.astimezone():%Y-%m-%d %H:%M:%S}  home   {home}  {state.upper()}{note}")

    def storage(self, home: str, state: str, free_bytes: int | None) -> None:
        """A home's card is low or failing (or well again): its alarms then live in its memory only."""
        free = None if free_bytes is None else round(free_bytes / 1048576, 1)
        if self.as_json:
            self._write(self.err, json.dumps({"type": "storage", "home": home, "state": state, "free_mib": free,
                                              "time": iso(datetime.now(timezone.utc))}))
            return
        note = {"low": "  -- card nearly full: old telemetry is being dropped",
                "failing": "  -- card full or failing: a restart now loses unsent alarms; visit or replace"}.get(state, "")
        self._write(self.out, f"{datetime.now().astimezone():%Y-%m-%d %H:%M:%S}  home   {home}  STORAGE {state.upper()}"
                              f" ({free if free is not None else '?'} MiB free){note}")

    def link(self, state: str, detail: str) -> None:
        """The receiver's own link to the broker: staff must know when the console is blind."""
        if self.as_json:
            self._write(self.err, json.dumps({"type": "receiver", "state": state, "broker": detail}))
        else:
            self._write(self.out, f"{datetime.now().astimezone():%Y-%m-%d %H:%M:%S}  receiver {state} ({detail})")

    def lookin(self, alert: Alert) -> None:
        """A rounds alert on stdout: a visit needed is an alarm, due and retry are events."""
        if self.as_json:
            s = alert.slot
            record = {
                "type": "lookin",
                "id": new_id(),
                "home": s.home,
                "class": alert.cls,
                "kind": alert.kind,
                "time": iso(alert.time),
                "clock_synced": alert.clock_synced,
                "received": iso(alert.time),
                "body": {"slot": s.time, "state": s.state, "reason": s.reason, "night": s.night,
                         "next_at": iso(s.next_at) if s.next_at else None},
            }
            self._write(self.out, json.dumps(record, ensure_ascii=False))
            return
        clock = "" if alert.clock_synced else " (center clock not synchronized)"
        self._write(self.out, f"{alert.time.astimezone():%Y-%m-%d %H:%M:%S}{clock}  {alert_line(alert)}")

    def rejected(self, topic: str, reason: str) -> None:
        if self.as_json:
            self._write(self.err, json.dumps({"type": "rejected", "topic": topic, "reason": reason}))
        else:
            self._write(self.err, f"rejected message on {topic}: {reason}")

    _lock = threading.Lock()  # the receiver and the rounds thread both write: whole lines only

    @classmethod
    def _write(cls, stream: TextIO, line: str) -> None:
        with cls._lock:
            stream.write(line + "\n")
            stream.flush()

"""How the night-staff console shows events: a readable line by default, JSON lines with --json.

With --json, stdout carries one JSON object per event (id, home, class, kind, time,
clock_synced, received, body) and nothing else, so scripts can parse every line; presence
changes, rejected messages and the receiver's own link state go to stderr as JSON objects
with a "type" field ("presence", "rejected", "receiver").
"""

import json
import sys
from datetime import datetime, timezone
from typing import TextIO

from agent.protocol.messages import EventMessage, iso

_MARK = {"alarm": "ALARM", "event": "event", "telemetry": "telem"}


def summary(kind: str, body: dict) -> str:
    """One readable line for an event body; commands and audit entries get their own wording."""
    if kind == "command_result":
        target = f" {body['lock']}" if "lock" in body else ""
        reason = f" - {body['reason']}" if body.get("reason") else ""
        return f"{body.get('action')}{target} by {body.get('staff')} ({body.get('role')}): {str(body.get('outcome')).upper()}{reason}"
    if kind == "audit":
        detail = body.get("detail") if isinstance(body.get("detail"), dict) else {}
        shown = " ".join(f"{k}={v}" for k, v in detail.items() if v not in (None, "") and k not in ("bytes", "config_sha256"))
        return f"#{body.get('seq')} {body.get('kind')} {shown}"
    return " ".join(f"{k}={v}" for k, v in body.items())


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

    def link(self, state: str, detail: str) -> None:
        """The receiver's own link to the broker: staff must know when the console is blind."""
        if self.as_json:
            self._write(self.err, json.dumps({"type": "receiver", "state": state, "broker": detail}))
        else:
            self._write(self.out, f"{datetime.now().astimezone():%Y-%m-%d %H:%M:%S}  receiver {state} ({detail})")

    def rejected(self, topic: str, reason: str) -> None:
        if self.as_json:
            self._write(self.err, json.dumps({"type": "rejected", "topic": topic, "reason": reason}))
        else:
            self._write(self.err, f"rejected message on {topic}: {reason}")

    @staticmethod
    def _write(stream: TextIO, line: str) -> None:
        stream.write(line + "\n")
        stream.flush()

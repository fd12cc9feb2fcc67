"""Readable wording of event bodies and look-in rounds for the CLI (`trygg center rounds`, the
views' event details). The views' lines themselves are printer.py's."""

from protocol.messages import iso

from .rounds import Alert, Slot

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

"""The home's locks as the console shows them: which there are, and what the device last said.

Which: the resident card's `locks` (an administrator names them as the device's config does);
none listed means the front door. State: only what the device itself confirmed in a signed
result tonight (an unlock, a lock, or a status it was asked for); nothing else counts, so a
lock the device has not spoken of tonight is shown as not known, never guessed.
"""

DEFAULT_LOCK = "front-door"


def lock_names(card: dict | None) -> dict[str, str | None]:
    """Lock name -> the card's label for it (None: the page's own word)."""
    return dict((card or {}).get("locks") or {DEFAULT_LOCK: None})


def lock_states(events: list[dict]) -> dict[str, dict]:
    """Lock name -> {state, at, by} from the device's signed results among tonight's events
    (oldest first: the last word wins)."""
    states: dict[str, dict] = {}
    for event in events:
        body = event.get("body") or {}
        if event.get("kind") != "command_result" or body.get("outcome") != "done":
            continue
        if body.get("action") in ("lock", "unlock") and isinstance(body.get("lock"), str):
            states[body["lock"]] = {"state": body.get("state"), "at": event["received"], "by": body.get("staff")}
        elif body.get("action") == "status" and isinstance((body.get("status") or {}).get("locks"), dict):
            for name, state in body["status"]["locks"].items():
                states[name] = {"state": state, "at": event["received"], "by": body.get("staff")}
    return states


def locks_view(card: dict | None, events: list[dict]) -> list[dict]:
    """Every lock the card names or the device spoke of, with its state (None: not known)."""
    names, states = lock_names(card), lock_states(events)
    return [{"lock": name, "label": names.get(name), **states.get(name, {"state": None, "at": None, "by": None})}
            for name in {**names, **{n: None for n in states}}]

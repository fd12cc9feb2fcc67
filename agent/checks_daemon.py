"""Doctor: is the daemon running, are its link and drivers healthy, how old is what waits in its
outbox? Asked over the control socket, the way `trygg status` asks (agent/control.py): the
doctor never opens the outbox itself, so it never holds a lock the daemon needs.
"""

from base.doctor import Verdict, failed, passed, warned
from base.errors import DaemonNotRunning, TryggError

STATUS_TIMEOUT_S = 10.0  # a daemon that does not answer by then is hung: that is the finding
EVENT_AGE_WARN_S = 3600.0  # an event or telemetry this old has not reached the center for an hour
START = "systemctl start trygg; journalctl -u trygg -n 50 says why it stopped"


def ask_status(request, socket) -> tuple[dict | None, Verdict]:
    """(the daemon's status or None, the verdict on the daemon itself)."""
    try:
        status = next(request(socket, {"op": "status"}, timeout=STATUS_TIMEOUT_S))
    except DaemonNotRunning as exc:
        return None, failed("daemon", str(exc), START)
    except (TryggError, OSError, ValueError, StopIteration) as exc:  # TimeoutError is an OSError
        return None, failed("daemon", f"the daemon did not answer on {socket}: {exc}", START)
    return status, passed("daemon", f"running for {status.get('uptime_s', 0):.0f} s (home {status.get('home')})")


def check_running(cfg, status: dict | None) -> list[Verdict]:
    """The link, the drivers and the storage, as the running daemon sees them."""
    if status is None:
        return [warned("drivers", "not known: the daemon is not running", START)]
    verdicts = []
    link = status.get("link")
    if link == "connected":
        verdicts.append(passed("daemon link", "connected to the broker"))
    else:
        verdicts.append(failed("daemon link", f"{link}: {status.get('last_error') or 'no error reported yet'}",
                               "see the broker checks above; the daemon retries by itself"))
    drivers = status.get("drivers", {})
    down = {name: d for name, d in drivers.items() if not d.get("running")}
    for name, d in down.items():
        verdicts.append(failed("drivers", f"{name} ({d.get('kind')}) not running: {d.get('error') or 'starting'}",
                               f"trygg test {name} checks its wiring; see journalctl -u trygg"))
    if not down:
        verdicts.append(passed("drivers", f"{len(drivers)} running"))
    storage = status.get("storage") or {}
    if storage.get("state") not in (None, "ok"):
        verdicts.append(failed("storage", f"{storage['state']}: {storage.get('error') or 'see trygg status'}",
                               "free space on the card or replace it (trygg status shows what is held in memory)"))
    return verdicts


def check_outbox(cfg, status: dict | None) -> Verdict:
    """The oldest message waiting per class: an alarm the center has not acknowledged after
    twice the re-send period fails; an event waiting an hour warns."""
    if status is None:
        return warned("outbox", "not known: the daemon is not running", START)
    classes = status["outbox"]["classes"]
    alarm = classes.get("alarm", {})
    parts = [f"{cls} {c['depth']} (oldest {c['oldest_age_s']:.0f} s)" for cls, c in classes.items() if c["depth"]]
    detail = "waiting: " + ", ".join(parts) if parts else "empty: the center has acknowledged everything"
    fix = "check the daemon link above and that the care center's receiver runs (trygg center status)"
    if alarm.get("depth") and alarm["oldest_age_s"] > 2 * cfg.outbox.resend_after_s:
        return failed("outbox", detail, fix)
    if any(c["depth"] and c["oldest_age_s"] > EVENT_AGE_WARN_S for c in classes.values()):
        return warned("outbox", detail, fix)
    return passed("outbox", detail)

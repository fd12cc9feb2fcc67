"""Every home at a glance (`trygg center homes`): presence, what the device last reported, cases.

One row per enrolled or heard-from home, from the store alone (any receiver or none running):
presence as of now (view.presence_now: a home whose heartbeats stopped is silent even before a
receiver marked it), the last fleet report the home sealed into its heartbeat (version,
backlog, faults, certificate expiry), and its open case. Homes needing a person come first,
then those needing a technician, then the rest.
"""

import logging
from datetime import datetime, timezone

from protocol import topics
from protocol.messages import iso

from . import keyring
from .homes import HomeRegistry
from .store import home_states
from .view import presence_now
from .wording import Words, language

log = logging.getLogger(__name__)
CERT_WARN_DAYS = 30


def _iso(at: float | None) -> str | None:
    return iso(datetime.fromtimestamp(at, timezone.utc)) if at is not None else None


def open_report(cfg, homes: HomeRegistry, home: str, sealed: bytes | None) -> dict | None:
    """The home's last fleet report, opened with the center's keys (None when absent or bad)."""
    if sealed is None:
        return None
    try:
        from protocol.fleet import open_report as open_sealed_report
    except ImportError:
        return None
    try:
        report = open_sealed_report(sealed.decode(), topics.status(home), keyring.opening_keys(cfg),
                                    homes.signer_for(home))
        return report.model_dump(mode="json")
    except Exception as exc:  # a report that does not open is no report, and is logged
        log.warning("fleet report of %s does not open: %s", home, exc)
        return None


def fleet_rows(cfg, desk, now: float) -> list[dict]:
    homes = HomeRegistry(cfg.center.homes_dir)
    states = home_states(desk.db)
    open_cases = {c.home: c for c in desk.listing(open_only=True)}
    rows = []
    for home in sorted(set(homes.keys) | set(states)):
        state = states.get(home)
        report = open_report(cfg, homes, home, state.report if state else None) or {}
        cert = report.get("cert_expires")
        cert_days = None
        if cert:
            cert_days = int((datetime.fromisoformat(cert.replace("Z", "+00:00")).timestamp() - now) // 86400)
        faults = list(report.get("faults") or []) + [f"driver {d} not running" for d in report.get("drivers_down") or []]
        if report.get("under_voltage") or report.get("under_voltage_seen"):
            faults.append("under-voltage (power supply)")
        if state and state.storage and state.storage != "ok":
            faults.append(f"storage {state.storage}")
        case = open_cases.get(home)
        rows.append({
            "home": home,
            "presence": presence_now(state, now, cfg.center.silent_after_heartbeats),
            "since": _iso(state.since) if state else None,
            "last_heard": _iso(state.last_heard) if state else None,
            "version": report.get("version"),
            "backlog": _backlog(report.get("outbox")),
            "unacked_alarms": report.get("unacked_alarms"),
            "faults": faults,
            "cert_days_left": cert_days,
            "open_case": case.id if case else None,
            "enrolled": home in homes.keys,
            "report_time": _iso(state.report_at) if state else None,
        })
    return sorted(rows, key=_attention)


def _backlog(outbox: dict | None) -> dict | None:
    """Per class, what waits in the home's outbox and how old the oldest is (seconds)."""
    if not outbox:
        return None
    return {cls: {"depth": (v or {}).get("depth"), "oldest_age_s": (v or {}).get("oldest_age_s")}
            for cls, v in outbox.items()}


def _attention(row: dict) -> tuple:
    """A person needed first (open case, home gone), then a technician, then the rest; by name."""
    person = row["open_case"] is not None or row["presence"] in ("offline", "silent", "never")
    technician = bool(row["faults"]) or (row["cert_days_left"] is not None and row["cert_days_left"] < CERT_WARN_DAYS)
    return (not person, not technician, row["home"])


def row_line(row: dict, lang: str | None) -> str:
    w = Words(language(lang))
    parts = [f"{row['home']:20}", f"{w.presence(row['presence']):24}"]
    if row["last_heard"]:
        parts.append(row["last_heard"][11:19])
    if row["open_case"]:
        parts.append(f"{w['case']} {row['open_case'][-8:]}")
    if row["faults"]:
        parts.append("; ".join(row["faults"]))
    if row["cert_days_left"] is not None and row["cert_days_left"] < CERT_WARN_DAYS:
        parts.append(f"cert {row['cert_days_left']} d")
    if row["version"]:
        parts.append(f"v{row['version']}")
    return "  ".join(parts)

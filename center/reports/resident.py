"""The resident's own record for a month: who looked in, who came through the door, and why.

The resident's right of access (GDPR article 15), done by the system itself. Taken from the
home's audit chain as the device forwarded it (center/auditchain.py checks it, first, over every
entry the center holds), so the record is what the device itself wrote: each command it judged
(who, when, done or refused) is an entry. What an entry does not say comes from the home's own
signed command results (the look-in's privacy filter and camera time, which lock) and its own
alarm cases (why a door was opened). Sealed details are opened in memory only.

Only this one home's events, cases and resident card are read: nothing of another resident can
reach the report. Plain Swedish, large type, printable (templates/resident.html.j2). Never
writes to the store.
"""

from datetime import UTC, datetime

from base.auditdetail import open_detail
from base.errors import TryggError
from protocol.messages import iso

from .. import keyring
from ..atrest import Sealer, center_keys
from ..auditchain import check
from ..homes import HomeRegistry
from ..opening import Opener
from ..residents import RESIDENT_CONTEXT, Residents
from ..wording import Words
from . import stats

ROLES = {"night-staff": "nattpersonal", "nurse": "sjuksköterska", "technician": "tekniker", "admin": "administratör",
         "home-care": "hemtjänst"}
FILTERS = {"none": "ingen (vanlig bild)", "blur": "suddig bild", "silhouette": "bara siluett"}
REFUSALS = {"role": "ditt medgivande gäller inte den yrkesrollen", "outside_hours": "utanför tiderna i ditt medgivande",
            "used_up": "nattens antal tittningar var redan använda", "no_camera": "ingen kamera i hemmet",
            "link_down": "förbindelsen var nere", "unsynced": "enhetens klocka var inte säker"}


def _iso(ts: float) -> str:
    return iso(datetime.fromtimestamp(ts, UTC))


def read_home(cfg, store, home: str) -> tuple[list[dict], dict[str, dict], int]:
    """Every audit body this home forwarded (as forwarded: sealed), its command results by
    command id, and how many of its recorded events no longer open."""
    opener = Opener(HomeRegistry(cfg.center.homes_dir), keyring.opening_keys(cfg), None, None)
    audits, results, broken = [], {}, 0
    for row in store.events_of(home):
        if row.cls != "event":
            continue
        try:
            event = opener.open_event(row.envelope, row.topic, open_audit=False)
        except (TryggError, ValueError):
            broken += 1
            continue
        if event.kind == "audit":
            audits.append(event.body)
        elif event.kind == "command_result" and isinstance(event.body.get("command"), str):
            results[event.body["command"]] = event.body
    return audits, results, broken


def _cases(store, desk, home: str, start: float, end: float) -> list:
    rows = store.db.query(f"SELECT {desk._COLUMNS} FROM cases WHERE home = ? AND opened < ? "
                          f"AND (closed IS NULL OR closed >= ?) ORDER BY opened", (home, end, start - 86400))
    return [desk._case(r) for r in rows]


def build(home: str, card: dict | None, audits: list[dict], results: dict[str, dict], cases: list,
          opening, month: str, zone: str, now: float, unreadable: int = 0) -> dict:
    """The record as plain data (what the template shows)."""
    start, end = stats.month_bounds(month, zone)
    words = Words("sv")
    chain = check(audits)
    bad_from = chain.first_bad if not chain.ok else None
    by_seq: dict[int, dict] = {}
    for body in audits:
        seq = body.get("seq")
        if isinstance(seq, int) and body.get("kind") == "command" and isinstance(body.get("time"), float):
            by_seq.setdefault(seq, body)
    commands = []
    for seq in sorted(by_seq):
        body = by_seq[seq]
        try:
            detail = open_detail(body, home, opening)
        except (TryggError, ValueError, KeyError, TypeError):
            detail = dict(body.get("detail") or {})
        commands.append((seq, body["time"], detail, bad_from is None or seq < bad_from))

    def when(ts):
        return stats.local(ts, zone, "%Y-%m-%d kl. %H:%M")

    def who(detail):
        name = _person(detail.get("staff"))
        role = ROLES.get(detail.get("role") or "", detail.get("role") or "")
        return f"{name} ({role})" if role else name

    lookins, entries = [], []
    in_month = [(s, t, d, v) for s, t, d, v in commands if start <= t < end]
    for seq, t, detail, verified in in_month:
        action, outcome = detail.get("action"), detail.get("outcome")
        result = results.get(detail.get("command") or "", {})
        if action == "lookin":
            done = outcome == "done"
            why_not = REFUSALS.get(detail.get("code") or "", detail.get("reason") or "nekades")
            lookins.append({
                "seq": seq, "at": _iso(t), "when": when(t), "who": who(detail), "done": done,
                "how_long": _camera_time(result.get("capture_ms")) if done else "ingen bild togs",
                "frames": result.get("frames"), "filter": FILTERS.get(result.get("privacy"), "okänt") if done else "–",
                "grant": "ja, inom ditt medgivande" if done else f"nej – nekades: {why_not}", "verified": verified})
        elif action == "unlock":
            lock = (result.get("args") or {}).get("lock")
            locks = (card or {}).get("locks") or {}
            entries.append({
                "seq": seq, "at": _iso(t), "when": when(t), "who": who(detail), "done": outcome == "done",
                "door": locks.get(lock, lock or "dörren"), "inside": _inside(t, lock, commands),
                "why": _why(t, cases, words) if outcome == "done" else f"låste inte upp: {detail.get('reason') or outcome}",
                "verified": verified})
    name = (card or {}).get("name")
    return {
        "report": "resident", "home": home, "month": month, "month_name": stats.month_name(month),
        "time_zone": zone, "generated": _iso(now), "generated_local": when(now),
        "resident": name or "den boende", "address": (card or {}).get("address", ""),
        "lookins": lookins, "entries": entries,
        "chain": {"ok": chain.ok, "entries": chain.entries, "first_seq": chain.first_seq,
                  "last_seq": chain.last_seq, "first_bad": chain.first_bad, "problem": chain.problem,
                  "hashes_checked": chain.hashes_checked, "unreadable_events": unreadable,
                  "said": _chain_words(chain, unreadable, zone)},
    }


def _person(name) -> str:
    """A staff name as a person reads it: "anna.berg" -> "Anna Berg"."""
    if not isinstance(name, str) or not name:
        return "okänd"
    return " ".join(part.capitalize() for part in name.replace("_", ".").replace("-", ".").split(".") if part)


def _camera_time(ms) -> str:
    if not isinstance(ms, (int, float)):
        return "okänt"
    return "under 1 s" if ms < 1000 else stats.minutes(ms / 1000)


def _inside(unlocked: float, lock: str | None, commands: list) -> str:
    """Time until the same door was locked again through the system, before the next unlock."""
    for _seq, t, detail, _v in commands:
        if t <= unlocked or detail.get("outcome") != "done":
            continue
        if detail.get("action") == "unlock":
            break
        if detail.get("action") == "lock":
            return stats.minutes(t - unlocked)
    return "okänt (inte låst via systemet)"


def _why(t: float, cases: list, words: Words) -> str:
    for case in cases:
        if case.opened - 60 <= t and (case.closed is None or t <= case.closed):
            kinds = ", ".join(words.kind(k) for k in case.kinds) or "larm"
            return f"larm: {kinds}"
    return "planerat besök (inget larm)"


def _chain_words(chain, unreadable: int, zone: str) -> str:
    if chain.first_seq is None:
        return "Enheten i ditt hem har inte skickat någon logg till larmcentralen ännu."
    if chain.ok:
        said = (f"Loggen från enheten i ditt hem är kontrollerad och hel: {chain.entries} poster i följd, "
                f"ingen ändrad, borttagen eller omflyttad.")
    else:
        where = f"vid post {chain.first_bad}" if chain.first_bad is not None else ""
        said = (f"VARNING: kontrollen av enhetens logg hittade ett fel {where}. Uppgifterna från och med den "
                f"posten är markerade som ej kontrollerade. Larmcentralen utreder felet.")
    if unreadable:
        said += f" {unreadable} sparade meddelanden gick inte att öppna och saknas här."
    return said


def report(cfg, store, home: str, month: str, now: float) -> dict:
    """The record of one enrolled home for a month, from a store."""
    from ..service import case_desk

    keyring.enrolled_home(cfg, home)
    zone = cfg.promise.time_zone
    start, end = stats.month_bounds(month, zone)
    audits, results, unreadable = read_home(cfg, store, home)
    keys = center_keys(cfg)
    card = Residents(store.db, Sealer(keys, RESIDENT_CONTEXT)).get(home)
    cases = _cases(store, case_desk(cfg, store, keys), home, start, end)
    return build(home, card, audits, results, cases, keyring.opening_keys(cfg), month.strip(), zone, now, unreadable)


def to_html(data: dict) -> str:
    from .render import render

    return render("resident.html.j2", data)

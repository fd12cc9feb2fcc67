"""Alarm cases: the night staff's work, as alarm-receiving centers know it.

Every alarm opens a case, or joins the home's open case (bed exit, then fall, then the help
button: one case, three alarms); a look-in round's PHYSICAL VISIT NEEDED opens one too.
open -> accepted (a named staff member takes it) -> on_site (their confirmed unlock of that
home, or by hand) -> closed with an outcome. Forward hands it to a colleague; reopen undoes a
close. A `test` alarm (an installer's check) opens no case: it is shown, not worked.

Who may change a case: a staff member, by a statement signed with their staff key
(staffsign.py), checked here against their enrolled public key. Every change, and every
escalation the service raises, goes into the hash-chained case log (caselog.py).

Exactly once, whatever number of receivers runs: a home's case is opened or joined under the
home's lock (and the database allows one open case per home); an escalation is a row with a
primary key, raised by the one writer whose insert succeeded.

At rest the case row holds routing and times (home, state, opened/accepted/on-site/closed,
escalation count); kinds, staff names, outcome, note and the device's help-coming answer are
sealed to the center key (atrest.py).
"""

import logging
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

from base.errors import TryggError
from protocol.ids import new_id
from protocol.messages import EventMessage, iso

from . import caselog, feed
from .atrest import Sealer
from .db import Database
from .staffsign import SignedAction

log = logging.getLogger(__name__)

STATES = ("open", "accepted", "on_site", "closed")
ACTIONS = ("accept", "on_site", "forward", "close", "reopen")


class CaseError(TryggError, ValueError):
    """A case action that cannot be done: one clear line, nothing changed."""


@dataclass
class Case:
    id: str
    home: str
    state: str
    opened: float
    accepted: float | None
    on_site: float | None
    closed: float | None
    updated: float
    escalation_count: int
    overdue: bool
    kinds: list[str] = field(default_factory=list)
    alarms: list[str] = field(default_factory=list)
    accepted_by: str | None = None
    on_site_by: str | None = None
    closed_by: str | None = None
    outcome: str | None = None
    note: str | None = None
    help_coming: dict | None = None
    escalations: list[dict] = field(default_factory=list)

    def to_json(self) -> dict:
        def t(x):
            return iso(datetime.fromtimestamp(x, timezone.utc)) if x is not None else None

        out = asdict(self)
        out.pop("escalation_count")
        for key in ("opened", "accepted", "on_site", "closed", "updated"):
            out[key] = t(out[key])
        out["response_s"] = {
            "to_accept": _seconds(self.opened, self.accepted),
            "to_on_site": _seconds(self.opened, self.on_site),
            "to_close": _seconds(self.opened, self.closed),
        }
        return out


def _seconds(start: float, end: float | None) -> float | None:
    return None if end is None else round(end - start, 1)


_SEALED_KEYS = ("kinds", "accepted_by", "on_site_by", "closed_by", "outcome", "note", "help_coming")


class CaseDesk:
    def __init__(self, db: Database, sealer: Sealer, cfg, staff_enrolled) -> None:
        """cfg: the [cases] section; staff_enrolled(name) -> the staff member's public key or None."""
        self.db = db
        self.sealer = sealer
        self.cfg = cfg
        self.staff_key = staff_enrolled

    # -- reading -----------------------------------------------------------------------------
    _COLUMNS = "id, home, state, opened, accepted, on_site, closed, updated, escalations, overdue, sealed"

    def get(self, case_id: str) -> Case:
        row = self.db.one(f"SELECT {self._COLUMNS} FROM cases WHERE id = ?", (case_id,))
        if row is None:
            raise CaseError(f"no case {case_id!r} (trygg center cases lists them)")
        return self._full(self._case(row))

    def resolve(self, ref: str) -> str:
        """A case id from its full id or its last 6+ characters (as the readable lines show it)."""
        ref = ref.strip().lower()
        if not re.fullmatch(r"[0-9a-f-]{6,36}", ref):
            raise CaseError(f"case must be a case id or its last 6 or more characters, got {ref!r}")
        found = [r[0] for r in self.db.query("SELECT id FROM cases WHERE id LIKE ? LIMIT 2", ("%" + ref,))]
        if not found:
            raise CaseError(f"no case {ref!r} (trygg center cases lists them)")
        if len(found) > 1:
            raise CaseError(f"{ref!r} matches more than one case: give more of its id")
        return found[0]

    def history(self, case_id: str) -> list[dict]:
        return caselog.history(self.db, self.sealer, case_id)

    def listing(self, open_only: bool = False, since: float | None = None) -> list[Case]:
        """Open cases first, newest on top; then the rest, newest on top."""
        where, params = [], []
        if open_only:
            where.append("state <> 'closed'")
        if since is not None:
            where.append("(opened >= ? OR state <> 'closed')" if not open_only else "opened >= ?")
            params.append(since)
        sql = f"SELECT {self._COLUMNS} FROM cases" + (f" WHERE {' AND '.join(where)}" if where else "")
        cases = [self._case(row) for row in self.db.query(sql + " ORDER BY opened DESC", params)]
        self._attach(cases)
        return sorted(cases, key=lambda c: (c.state == "closed", -c.opened))

    def open_case_of(self, home: str) -> Case | None:
        row = self.db.one(f"SELECT {self._COLUMNS} FROM cases WHERE home = ? AND state <> 'closed'", (home,))
        return self._full(self._case(row)) if row else None

    def _case(self, row) -> Case:
        (case_id, home, state, opened, accepted, on_site, closed, updated, escalations, overdue, sealed) = row
        data = self.sealer.open(f"case/{case_id}", sealed) or {"kinds": ["(sealed: does not open)"]}
        return Case(case_id, home, state, opened, accepted, on_site, closed, updated, escalations, bool(overdue),
                    **{k: data.get(k) for k in _SEALED_KEYS if k != "kinds"}, kinds=list(data.get("kinds") or []))

    def _full(self, case: Case) -> Case:
        self._attach([case])
        return case

    def _attach(self, cases: list[Case]) -> None:
        """Each case's alarm ids and escalations (two queries, whatever the number of cases)."""
        if not cases:
            return
        by_id = {c.id: c for c in cases}
        for i in range(0, len(cases), 500):
            chunk = [c.id for c in cases[i:i + 500]]
            marks = ",".join("?" * len(chunk))
            for event_id, case_id in self.db.query(f"SELECT event_id, case_id FROM case_alarms WHERE case_id IN "
                                                   f"({marks}) ORDER BY received", chunk):
                by_id[case_id].alarms.append(event_id)
            for case_id, flag, n, at in self.db.query(f"SELECT case_id, flag, n, at FROM case_flags WHERE case_id IN "
                                                      f"({marks}) ORDER BY at, n", chunk):
                by_id[case_id].escalations.append(
                    {"flag": flag, "n": n, "at": iso(datetime.fromtimestamp(at, timezone.utc)),
                     "to": {"escalated": "shift", "on_call": "on_call", "overdue": "shift"}[flag]})

    # -- what the receiver brings (inside its transaction) ---------------------------------------
    def on_events(self, tx, events: list[tuple[EventMessage, float]]) -> list[tuple]:
        """New events, just recorded: alarms open or join cases; a confirmed unlock or help-coming
        answer by the staff member who took the home's case goes into that case. Feed rows out."""
        feed: list[tuple] = []
        by_home: dict[str, list[tuple[EventMessage, float]]] = {}
        for event, received in events:
            if event.cls == "alarm" or event.kind == "command_result":  # a test is class test: no case
                by_home.setdefault(event.home, []).append((event, received))
        for home in sorted(by_home):  # locks in one order on every receiver
            tx.lock(f"case:{home}")
            for event, received in by_home[home]:
                if event.cls == "alarm":
                    feed += self._alarm(tx, home, [event.kind], event.id, received)
                else:
                    feed += self._command_result(tx, home, event.body, received)
        return feed

    def on_visit_needed(self, tx, home: str, reason: str, at: float) -> list[tuple]:
        """A rounds PHYSICAL VISIT NEEDED: a case like an alarm, with no event of its own."""
        tx.lock(f"case:{home}")
        return self._alarm(tx, home, ["visit_needed"], None, at, note=reason)

    def _alarm(self, tx, home: str, kinds: list[str], event_id: str | None, at: float,
               note: str | None = None) -> list[tuple]:
        row = tx.execute(f"SELECT {self._COLUMNS} FROM cases WHERE home = ? AND state <> 'closed'", (home,)).fetchone()
        if row is None:
            case = Case(new_id(), home, "open", at, None, None, None, at, 0, False, kinds=list(kinds), note=note)
            tx.execute(f"INSERT INTO cases ({self._COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                       (case.id, home, "open", at, None, None, None, at, 0, 0, self._seal(case)))
            what = "opened"
        else:
            case = self._case(row)
            case.kinds += [k for k in kinds if k not in case.kinds]
            self._save(tx, case, at)
            what = "alarm"
        if event_id is not None:
            tx.execute("INSERT INTO case_alarms (event_id, case_id, received) VALUES (?,?,?) "
                       "ON CONFLICT (event_id) DO NOTHING", (event_id, case.id, at))
        caselog.append(tx, self.sealer, case.id, what, at, {"kinds": kinds, "event": event_id, "by": None})
        return [(at, "case", home, f"{case.id}|{what}")]

    def _command_result(self, tx, home: str, body: dict, at: float) -> list[tuple]:
        row = tx.execute(f"SELECT {self._COLUMNS} FROM cases WHERE home = ? AND state <> 'closed'", (home,)).fetchone()
        if row is None:
            return []
        case = self._case(row)
        staff, action, outcome = body.get("staff"), body.get("action"), body.get("outcome")
        if not staff or staff != case.accepted_by:
            return []
        if action == "unlock" and outcome == "done" and case.state == "accepted":
            case.state, case.on_site, case.on_site_by = "on_site", at, staff
            what = "on_site"
        elif action == "help_coming" and (case.help_coming or {}).get("outcome") in (None, "no_answer"):
            case.help_coming = _verdict(body, at)
            what = "help_coming"
        else:
            return []
        self._save(tx, case, at)
        caselog.append(tx, self.sealer, case.id, what, at, {"by": staff, "auto": True, "outcome": outcome})
        return [(at, "case", home, f"{case.id}|{what}")]

    # -- what staff do ---------------------------------------------------------------------------
    def act(self, signed: SignedAction, now: float) -> Case:
        """Apply a staff member's signed case action; CaseError (nothing changed) when it cannot be."""
        statement = signed.verify(self.staff_key, now)
        action, case_id, by, args = statement["action"], statement["case"], statement["by"], statement["args"]
        if action not in ACTIONS:
            raise CaseError(f"unknown case action {action!r}")
        home = self.get(case_id).home
        with self.db.tx(lock=f"case:{home}") as tx:
            row = tx.execute(f"SELECT {self._COLUMNS} FROM cases WHERE id = ?", (case_id,)).fetchone()
            case = self._case(row)
            getattr(self, f"_{action}")(tx, case, by, args, now)
            self._save(tx, case, now)
            caselog.append(tx, self.sealer, case.id, action, now,
                           {"by": by, "args": args, "statement": signed.statement.decode(), "sig": signed.signature_b64})
            feed.append(tx, [(now, "case", home, f"{case.id}|{action}")])
        return self.get(case_id)

    def _accept(self, tx, case: Case, by: str, args: dict, now: float) -> None:
        if case.state != "open":
            raise CaseError(f"case {case.id} is {self._state_text(case)}: it cannot be accepted"
                            + (" (forward it instead)" if case.state in ("accepted", "on_site") else ""))
        case.state, case.accepted, case.accepted_by = "accepted", now, by

    def _on_site(self, tx, case: Case, by: str, args: dict, now: float) -> None:
        if case.state not in ("open", "accepted"):
            raise CaseError(f"case {case.id} is {self._state_text(case)}: on site cannot be recorded")
        if case.state == "open":  # on site without having taken it: taking it is implied
            case.accepted, case.accepted_by = now, by
        case.state, case.on_site, case.on_site_by = "on_site", now, by

    def _forward(self, tx, case: Case, by: str, args: dict, now: float) -> None:
        to = args.get("to")
        if not to:
            raise CaseError("forward needs --to NAME (the colleague who takes it)")
        if case.state == "closed":
            raise CaseError(f"case {case.id} is closed: reopen it first")
        if self.staff_key(to) is None:
            raise CaseError(f"{to!r} is not an enrolled staff member (trygg center staff-key {to})")
        if to == case.accepted_by:
            raise CaseError(f"case {case.id} is already {to}'s")
        if case.state == "open":
            case.state = "accepted"
        case.accepted, case.accepted_by = now, to

    def _close(self, tx, case: Case, by: str, args: dict, now: float) -> None:
        outcome = args.get("outcome")
        if case.state == "closed":
            raise CaseError(f"case {case.id} is already closed ({case.outcome}, by {case.closed_by})")
        if outcome not in self.cfg.outcomes:
            raise CaseError(f"outcome must be one of {', '.join(self.cfg.outcomes)}, got {outcome!r}")
        case.state, case.closed, case.closed_by, case.outcome = "closed", now, by, outcome
        if args.get("note"):
            case.note = args["note"]

    def _reopen(self, tx, case: Case, by: str, args: dict, now: float) -> None:
        if case.state != "closed":
            raise CaseError(f"case {case.id} is {self._state_text(case)}, not closed: nothing to reopen")
        other = tx.execute("SELECT id FROM cases WHERE home = ? AND state <> 'closed'", (case.home,)).fetchone()
        if other:
            raise CaseError(f"home {case.home} has another open case {other[0]}: work that one")
        case.state, case.closed, case.closed_by, case.outcome = "open", None, None, None
        case.accepted = case.accepted_by = case.on_site = case.on_site_by = None

    @staticmethod
    def _state_text(case: Case) -> str:
        who = case.accepted_by and f" by {case.accepted_by}"
        return {"open": "open", "accepted": f"accepted{who}", "on_site": f"on site{who}",
                "closed": f"closed ({case.outcome})"}[case.state]

    def record_help_coming(self, case_id: str, verdict: dict, now: float) -> None:
        """The device's signed answer to help_coming, as the sender got it (the event may follow)."""
        home = self.get(case_id).home
        with self.db.tx(lock=f"case:{home}") as tx:
            case = self._case(tx.execute(f"SELECT {self._COLUMNS} FROM cases WHERE id = ?", (case_id,)).fetchone())
            if case.help_coming and case.help_coming.get("outcome") != "no_answer":
                return  # the device's own result event was recorded first: it is the same answer
            case.help_coming = _verdict(verdict, now)
            self._save(tx, case, now)
            caselog.append(tx, self.sealer, case.id, "help_coming", now, {"by": verdict.get("staff"),
                                                                          "outcome": verdict.get("outcome")})
            feed.append(tx, [(now, "case", home, f"{case.id}|help_coming")])

    # -- escalation (the service's ticker) ----------------------------------------------------------
    def escalate(self, now: float) -> list[tuple[str, str, int]]:
        """Raise every escalation, on-call call and overdue flag now due, each exactly once."""
        c = self.cfg
        raised = []
        rows = self.db.query("SELECT id, home, state, opened, escalations FROM cases WHERE state IN ('open', 'accepted')")
        for case_id, home, state, opened, count in rows:
            due = []
            if state == "open":
                periods = int((now - opened) // c.accept_within_s)
                due += [("escalated", n) for n in range(count + 1, min(periods, c.escalate_times) + 1)]
                if periods > c.escalate_times:
                    due.append(("on_call", 0))
            if now - opened >= c.on_site_within_s:
                due.append(("overdue", 0))
            for flag, n in due:
                if self._raise(case_id, home, flag, n, now):
                    raised.append((case_id, flag, n))
        return raised

    def _raise(self, case_id: str, home: str, flag: str, n: int, now: float) -> bool:
        with self.db.tx() as tx:
            tx.execute("INSERT INTO case_flags (case_id, flag, n, at) VALUES (?,?,?,?) "
                       "ON CONFLICT (case_id, flag, n) DO NOTHING", (case_id, flag, n, now))
            if tx.rowcount != 1:
                return False
            if flag == "escalated":
                tx.execute("UPDATE cases SET escalations = ? WHERE id = ? AND escalations < ?", (n, case_id, n))
            if flag == "overdue":
                tx.execute("UPDATE cases SET overdue = 1 WHERE id = ?", (case_id,))
            called = {"to": list(self.cfg.on_call)} if flag == "on_call" else {}  # who was on call then
            caselog.append(tx, self.sealer, case_id, flag, now, {"by": None, "n": n, **called})
            feed.append(tx, [(now, "case", home, f"{case_id}|{flag}:{n}")])
        return True

    # -- storing -----------------------------------------------------------------------------------
    def _seal(self, case: Case) -> bytes:
        return self.sealer.seal(f"case/{case.id}", {k: getattr(case, k) for k in _SEALED_KEYS})

    def _save(self, tx, case: Case, now: float) -> None:
        tx.execute("UPDATE cases SET state=?, accepted=?, on_site=?, closed=?, updated=?, sealed=? WHERE id=?",
                   (case.state, case.accepted, case.on_site, case.closed, now, self._seal(case), case.id))


def _verdict(body: dict, at: float) -> dict:
    """The device's help-coming answer as kept in the case: outcome, what it did, when."""
    keep = {k: body.get(k) for k in ("outcome", "reason", "led", "spoken", "until") if body.get(k) is not None}
    return {**keep, "at": iso(datetime.fromtimestamp(at, timezone.utc))}

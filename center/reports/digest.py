"""A home's facts per finished day, kept sealed, so a morning report does not open five weeks of events.

Opening one envelope costs ~150 µs (verify + HPKE open + decode); a morning report reads five
weeks of every home (the baseline), which for 300 homes is ~100,000 envelopes: 15 s. So the facts
of a finished day (facts.py: a few bed exits, doses, one motion summary) are kept, sealed to
the center key like every other stored value (atrest.Sealer, bound to the home and the day),
in `report_days`; the next report opens one small digest per home and day instead of the day's
envelopes. Plaintext columns: home, day, how many events the digest covers and the newest one's
received time (routing and times only, as the events table already shows).

A digest is trusted only while it still covers exactly the events stored for that day: an event
that arrives late (a home back after an outage) changes the count, and the day is opened again.
Only a day that has ended is kept; today is always opened fresh. Nothing is ever written in
plaintext: what is opened lives in memory for the one report.

The table is created here on first use (IF NOT EXISTS) until migrations.py takes it as a step.
"""

import logging
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ..atrest import Sealer
from .facts import Fact, open_facts

log = logging.getLogger(__name__)
CONTEXT = "trygg-center/v1/report-day/"
_TABLE = ("CREATE TABLE IF NOT EXISTS report_days (home TEXT NOT NULL, day TEXT NOT NULL, events INTEGER NOT NULL, "
          "newest {real} NOT NULL, sealed {blob} NOT NULL, PRIMARY KEY (home, day))")
_SPELLING = {"sqlite": {"real": "REAL", "blob": "BLOB"}, "postgresql": {"real": "DOUBLE PRECISION", "blob": "BYTEA"}}


class DayDigests:
    def __init__(self, store, opener, keys, zone: str, keep: bool = True) -> None:
        self.store, self.opener = store, opener
        self.sealer = Sealer(keys, CONTEXT)
        self.zone = ZoneInfo(zone)
        self.keep = keep  # False: read digests, write none (a read-only store)
        self.opened = {"envelopes": 0, "digests": 0}
        self._pending: list[tuple] = []
        with store.db.tx() as tx:
            tx.execute(_TABLE.format(**_SPELLING[store.db.dialect]))

    def home_facts(self, home: str, since: float, until: float, now: float) -> list[Fact]:
        """Every counted fact of the home's events received in [since, until), oldest first."""
        db = self.store.db
        rows = db.query("SELECT id, received FROM events WHERE home = ? AND received >= ? AND received < ?",
                        (home, since, until))
        days: dict[str, list] = {}
        for event_id, received in rows:
            days.setdefault(self._day(received), []).append((event_id, received))
        kept = {day: (n, newest, bytes(sealed)) for day, n, newest, sealed in db.query(
            "SELECT day, events, newest, sealed FROM report_days WHERE home = ? AND day >= ?",
            (home, self._day(since)))}
        facts: list[Fact] = []
        for day, events in sorted(days.items()):
            newest = max(r for _, r in events)
            stored = kept.get(day)
            digest = None
            if stored and stored[0] == len(events) and stored[1] == newest:
                digest = self.sealer.open(f"{home}/{day}", stored[2])
            if digest is not None:
                self.opened["digests"] += 1
                facts += [Fact(w, at, data) for w, at, data in digest["facts"]]
                continue
            opened = open_facts(self.store, self.opener, home, [i for i, _ in events])
            self.opened["envelopes"] += len(events)
            facts += opened
            if self.keep and self._end(day) <= now and self._whole(day, since, until):
                self._save(home, day, len(events), newest, opened)
        facts.sort(key=lambda f: f.at)
        return facts

    def _save(self, home: str, day: str, count: int, newest: float, facts: list[Fact]) -> None:
        sealed = self.sealer.seal(f"{home}/{day}", {"facts": [[f.what, f.at, f.data] for f in facts]})
        self._pending.append((home, day, count, newest, sealed))

    def flush(self) -> None:
        """Keep the digests made by this report: one transaction (one fsync), whatever their number."""
        if not self._pending:
            return
        with self.store.db.tx() as tx:
            tx.insert_rows("INSERT INTO report_days (home, day, events, newest, sealed)", self._pending,
                           "ON CONFLICT (home, day) DO UPDATE SET events = excluded.events, newest = excluded.newest, "
                           "sealed = excluded.sealed")
        self._pending = []

    def _day(self, at: float) -> str:
        return datetime.fromtimestamp(at, self.zone).date().isoformat()

    def _start(self, day: str) -> float:
        return datetime.combine(date.fromisoformat(day), time(0), self.zone).timestamp()

    def _end(self, day: str) -> float:
        return self._start((date.fromisoformat(day) + timedelta(days=1)).isoformat())

    def _whole(self, day: str, since: float, until: float) -> bool:
        """Only a day read whole is kept (a report's first and last day may be cut)."""
        return since <= self._start(day) and self._end(day) <= until

"""A home's facts per finished week (or day), kept sealed, so a morning report need not open
five weeks of envelopes.

Opening one envelope costs ~150-300 µs (signature check, HPKE open, decode); a morning report
reads five weeks of every home (the baseline): for 300 homes ~70,000-100,000 envelopes, 25 s.
So the facts of a finished week (facts.py: bed exits, doses, motion summaries), and of each
finished day while its week is under way, are kept sealed to the center key like every other
stored value (atrest.Sealer, bound to the home and the span) in `report_days`; the next report
opens a handful of digests per home instead. A week that just finished is made from its days'
digests. Plaintext columns: home, span, how many events the digest covers and the newest one's
received time (routing and times only, as the events table already shows).

A digest is trusted only while it still covers exactly the events stored for its span: an event
that arrives late (a home back after an outage) changes the count, and the span is opened again.
Only a span that has ended is kept; today is always opened fresh. Nothing is ever written in
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
WEEK = "/7"


class DayDigests:
    def __init__(self, store, opener, keys, zone: str, keep: bool = True) -> None:
        self.store, self.opener = store, opener
        self.sealer = Sealer(keys, CONTEXT)
        self.zone = ZoneInfo(zone)
        self.keep = keep  # False: read digests, write none (a read-only store)
        self.opened = {"envelopes": 0, "digests": 0}
        self._pending: list[tuple] = []  # report_days: the store's migration step 7

    def home_facts(self, home: str, since: float, until: float, now: float) -> list[Fact]:
        """Every counted fact of the home's events received in [since, until), oldest first; the
        read starts at the Monday before `since`, so whole weeks are read (and kept) whole."""
        db = self.store.db
        since = self._start(self._monday(self._date(since)).isoformat())
        # received only: the (home, received) index answers it without reading a single envelope
        rows = db.query("SELECT received FROM events WHERE home = ? AND received >= ? AND received < ?",
                        (home, since, until))
        spans: dict[str, list] = {}
        for (received,) in rows:
            spans.setdefault(self._span(received, min(now, until)), []).append((None, received))
        kept = {span: (n, newest, bytes(sealed)) for span, n, newest, sealed in db.query(
            "SELECT day, events, newest, sealed FROM report_days WHERE home = ? AND day >= ?",
            (home, self._date(since).isoformat()))}
        facts: list[Fact] = []
        for span, events in sorted(spans.items()):
            found = self._kept(home, span, events, kept)
            if found is None and span.endswith(WEEK):  # a week just finished: from its days' digests
                days: dict[str, list] = {}
                for event in events:
                    days.setdefault(self._date(event[1]).isoformat(), []).append(event)
                found = []
                for day, day_events in sorted(days.items()):
                    found += self._kept(home, day, day_events, kept) or self._open(home, day_events)
            elif found is not None:
                facts += found
                continue
            found = found if found is not None else self._open(home, events)
            facts += found
            first, after = self._bounds(span)
            if self.keep and after <= now and since <= first and after <= until:
                self._save(home, span, len(events), max(r for _, r in events), found)
        facts.sort(key=lambda f: f.at)
        return facts

    def _kept(self, home: str, span: str, events: list, kept: dict) -> list[Fact] | None:
        """The span's facts from its digest, if one covers exactly these events; else None."""
        stored = kept.get(span)
        if not stored or stored[0] != len(events) or stored[1] != max(r for _, r in events):
            return None
        digest = self.sealer.open(f"{home}/{span}", stored[2])
        if digest is None:
            return None
        self.opened["digests"] += 1
        return [Fact(w, at, data) for w, at, data in digest["facts"]]

    def _open(self, home: str, events: list) -> list[Fact]:
        """Open a span's envelopes (a span is a stretch of time: its first to last event is all of it)."""
        self.opened["envelopes"] += len(events)
        received = [r for _, r in events]
        ids = [r[0] for r in self.store.db.query("SELECT id FROM events WHERE home = ? AND received >= ? AND "
                                                 "received <= ?", (home, min(received), max(received)))]
        return open_facts(self.store, self.opener, home, ids)

    def _save(self, home: str, span: str, count: int, newest: float, facts: list[Fact]) -> None:
        sealed = self.sealer.seal(f"{home}/{span}", {"facts": [[f.what, f.at, f.data] for f in facts]})
        self._pending.append((home, span, count, newest, sealed))

    def flush(self) -> None:
        """Keep the digests made by this report: one transaction (one fsync), whatever their number.
        A week's digest replaces the digests of its days."""
        if not self._pending:
            return
        with self.store.db.tx() as tx:
            for home, span, *_ in self._pending:
                if span.endswith(WEEK):
                    monday = date.fromisoformat(span[:10])
                    tx.execute("DELETE FROM report_days WHERE home = ? AND day >= ? AND day < ?",
                               (home, monday.isoformat(), (monday + timedelta(days=7)).isoformat()))
            tx.insert_rows("INSERT INTO report_days (home, day, events, newest, sealed)", self._pending,
                           "ON CONFLICT (home, day) DO UPDATE SET events = excluded.events, newest = excluded.newest, "
                           "sealed = excluded.sealed")
        self._pending = []

    def _span(self, at: float, now: float) -> str:
        """A week finished by now (Monday to Sunday, local; now = the end of what is read) is one
        span, "YYYY-MM-DD/7"; a day of a week still under way is its own, "YYYY-MM-DD"."""
        day = self._date(at)
        monday = self._monday(day)
        if self._start((monday + timedelta(days=7)).isoformat()) <= now:
            return monday.isoformat() + WEEK
        return day.isoformat()

    def _bounds(self, span: str) -> tuple[float, float]:
        first = date.fromisoformat(span[:10])
        days = 7 if span.endswith(WEEK) else 1
        return self._start(first.isoformat()), self._start((first + timedelta(days=days)).isoformat())

    def _date(self, at: float) -> date:
        return datetime.fromtimestamp(at, self.zone).date()

    @staticmethod
    def _monday(day: date) -> date:
        return day - timedelta(days=day.weekday())

    def _start(self, day: str) -> float:
        return datetime.combine(date.fromisoformat(day), time(0), self.zone).timestamp()

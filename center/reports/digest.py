"""A home's facts per finished week (or day), kept sealed, so a morning report need not open
five weeks of envelopes.

Opening one envelope costs ~150-300 µs (signature check, HPKE open, decode; ~60-100 µs when only
looked into, facts.open_facts); a morning report reads five weeks of every home (the baseline):
a home sends ~110 messages a day (device health every 15 min), so for 300 homes ~1.2 million
envelopes, ~2 minutes (bench/reports.py).
So the facts of a finished week (facts.py: bed exits, doses, motion summaries), and of each
finished day while its week is under way, are kept sealed to the center key like every other
stored value (atrest.Sealer, bound to the home and the span) in `report_days`; the next report
opens a handful of digests per home instead. A week that just finished is made from its days'
digests. Plaintext columns: home, span, how many events the digest covers and the newest one's
received time (routing and times only, as the events table already shows).

A digest is trusted only while it still covers exactly the events stored for its span: an event
that arrives late (a home back after an outage) changes the count, and the span is opened again.
Nothing is ever written in plaintext: what is opened lives in memory for the one report.

A day still under way is kept too, as a part ("YYYY-MM-DD+": its events received up to the
newest it covers): the report runs every morning at 07:00, and the next one then opens only
what came after (yesterday from 07:00, and tonight) rather than all of yesterday again. A part
is used only while the events up to its newest are exactly those it covers; the day's whole
digest replaces it once the day has ended.

The table is created here on first use (IF NOT EXISTS) until migrations.py takes it as a step.
"""

import logging
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from ..atrest import Sealer
from ..store import Received
from .facts import Fact, open_facts

log = logging.getLogger(__name__)
CONTEXT = "trygg-center/v1/report-day/"
WEEK = "/7"
PART = "+"  # a day under way, kept so far
CUT = 1e-6  # received times are floats: "after the newest" starts just past it


class DayDigests:
    def __init__(self, store, opener, keys, zone: str, keep: bool = True) -> None:
        self.store, self.opener = store, opener
        self.sealer = Sealer(keys, CONTEXT)
        self.zone = ZoneInfo(zone)
        self.keep = keep  # False: read digests, write none (a read-only store)
        self.opened = {"envelopes": 0, "digests": 0, "verified": 0, "skipped": 0}  # skipped: facts.open_facts
        self._spanners: dict[tuple, list] = {}
        self._pending: list[tuple] = []  # report_days: the store's migration step 7

    def home_facts(self, home: str, since: float, until: float, now: float) -> list[Fact]:
        """Every counted fact of the home's events received in [since, until), oldest first; the
        read starts at the Monday before `since`, so whole weeks are read (and kept) whole."""
        db = self.store.db
        since = self._start(self._monday(self._date(since)).isoformat())
        kept = {span: (n, newest, bytes(sealed)) for span, n, newest, sealed in db.query(
            "SELECT day, events, newest, sealed FROM report_days WHERE home = ? AND day >= ?",
            (home, self._date(since).isoformat()))}
        facts: list[Fact] = []
        spans = self._spans(since, until, min(now, until))
        tallies = self._tallies(home, spans, since, until)
        for i, (span, first, after) in enumerate(spans):
            n, newest, oldest = tallies.get(i, (0, None, None))
            if not n:
                continue
            found = self._kept(home, span, n, newest, kept)
            if found is None and span.endswith(WEEK):  # a week just finished: from its days' digests
                found = []
                for day, day_first, day_after in self._days(first, after):
                    dn, dnewest, doldest = self._tally(home, day_first, day_after)
                    if dn:
                        found += self._day(home, day, day_first, (dn, dnewest, doldest), kept)
            elif found is not None:
                facts += found
                continue
            found = found if found is not None else self._day(home, span, first, (n, newest, oldest), kept)
            facts += found
            if self.keep and since <= first and after <= until and after <= now:
                self._save(home, span, n, newest, found)
            elif self.keep and since <= first and not span.endswith(WEEK):  # today, so far
                self._save(home, span + PART, n, newest, found)
        facts.sort(key=lambda f: f.at)
        return facts

    def _tally(self, home: str, start: float, end: float) -> tuple[int, float | None, float | None]:
        """How many events the home has received in [start, end), the newest and the oldest: the
        (home, received) index answers it without reading a single envelope."""
        n, newest, oldest = self.store.db.one("SELECT COUNT(*), MAX(received), MIN(received) FROM events "
                                              "WHERE home = ? AND received >= ? AND received < ?", (home, start, end))
        return n or 0, newest, oldest

    def _tallies(self, home: str, spans: list, since: float, until: float) -> dict[int, tuple]:
        """_tally of every span at once: one query, grouped by span (a CASE over the spans' starts)."""
        starts = [first for _, first, _ in spans[1:]]
        bucket = "CASE " + " ".join(f"WHEN received < ? THEN {i}" for i in range(len(starts))) + \
            f" ELSE {len(starts)} END" if starts else "0"
        rows = self.store.db.query(f"SELECT {bucket} AS span, COUNT(*), MAX(received), MIN(received) FROM events "
                                   "WHERE home = ? AND received >= ? AND received < ? GROUP BY span",
                                   (*starts, home, since, until))
        return {int(i): (n, newest, oldest) for i, n, newest, oldest in rows}

    def _kept(self, home: str, span: str, n: int, newest: float, kept: dict) -> list[Fact] | None:
        """The span's facts from its digest, if one covers exactly these events; else None."""
        stored = kept.get(span)
        if not stored or stored[0] != n or stored[1] != newest:
            return None
        digest = self.sealer.open(f"{home}/{span}", stored[2])
        if digest is None:
            return None
        self.opened["digests"] += 1
        return [Fact(w, at, data) for w, at, data in digest["facts"]]

    def _day(self, home: str, day: str, first: float, tally: tuple, kept: dict) -> list[Fact]:
        """A day's facts: its digest; or its part kept earlier and what came after it; or opened."""
        n, newest, oldest = tally
        whole = self._kept(home, day, n, newest, kept)
        if whole is not None:
            return whole
        part = kept.get(day + PART)
        if part and part[1] is not None and part[1] <= newest:
            before = self._tally(home, first, part[1] + CUT)
            found = self._kept(home, day + PART, before[0], before[1], kept)
            if found is not None:
                later = self._tally(home, part[1] + CUT, newest + CUT)
                return found + (self._open(home, later[2], later[1], later[0]) if later[0] else [])
        return self._open(home, oldest, newest, n)

    def _open(self, home: str, oldest: float, newest: float, n: int) -> list[Fact]:
        """Open a span's envelopes (a span is a stretch of time: its first to last event is all of it)."""
        self.opened["envelopes"] += n
        rows = [Received(r[0], r[1], r[2], r[3], bytes(r[4]), r[5]) for r in self.store.db.query(
            "SELECT id, home, class, topic, envelope, received FROM events WHERE home = ? AND received >= ? AND "
            "received <= ?", (home, oldest, newest))]  # one read by the (home, received) index
        return open_facts(self.store, self.opener, home, [], self.opened, rows=rows)

    def _spans(self, since: float, until: float, now: float) -> list[tuple[str, float, float]]:
        """The spans (_span) that cover [since, until), each with its bounds: made once per report
        (every home reads the same range), so that a home's read is a few counts, not a time-zone
        conversion for each of its ~4,000 events of five weeks."""
        key = (since, until, now)
        if key not in self._spanners:
            out: list[tuple[str, float, float]] = []
            for day, first, after in self._days(since, until):
                name = self._span(first, now)
                if out and out[-1][0] == name:
                    out[-1] = (name, out[-1][1], after)
                else:
                    out.append((name, first, after))
            self._spanners = {key: out}
        return self._spanners[key]

    def _days(self, since: float, until: float) -> list[tuple[str, float, float]]:
        """The local days from since's to until's (exclusive of a day that starts at until)."""
        out, day = [], self._date(since)
        while True:
            first, after = self._start(day.isoformat()), self._start((day + timedelta(days=1)).isoformat())
            if first >= until:
                return out
            out.append((day.isoformat(), first, after))
            day += timedelta(days=1)

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
                if not span.endswith(PART):  # a day's part is replaced by its whole digest
                    tx.execute("DELETE FROM report_days WHERE home = ? AND day = ?", (home, span[:10] + PART))
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

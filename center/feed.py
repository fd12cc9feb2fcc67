"""The feed: what staff views follow, one row per thing worth showing, in commit order.

The receiving service appends a row in the same transaction that records what it points at
(a new event, a case change, a presence change, an escalation, a rounds alert), so a view
never shows what was not recorded and never misses what was. A view reads rows after the
last seq it showed; each row is shown once per view, whatever number of receivers runs.

Commit order is seq order because every append takes the "feed" lock last and holds it to
commit (PostgreSQL hands out sequence values out of commit order otherwise, and a view
reading `seq > last` would skip a row committed late). The row holds routing only: the type,
the home and a reference (an event id, a case id, a state); the content is where it points.
"""

from dataclasses import dataclass

from .db import Database, _Tx

TYPES = ("event", "case", "presence", "storage", "lookin", "receiver", "rejected")


@dataclass(frozen=True)
class FeedRow:
    seq: int
    at: float
    type: str
    home: str | None
    ref: str | None


def append(tx: _Tx, rows: list[tuple[float, str, str | None, str | None]]) -> None:
    """Append (at, type, home, ref) rows inside tx: take the feed lock last, hold it to commit."""
    if not rows:
        return
    tx.lock("feed")
    tx.insert_rows("INSERT INTO feed (at, type, home, ref)", rows)
    if tx.dialect == "postgresql":
        tx.execute("NOTIFY trygg_feed")


def after(db: Database, seq: int, limit: int = 1000) -> list[FeedRow]:
    rows = db.query("SELECT seq, at, type, home, ref FROM feed WHERE seq > ? ORDER BY seq LIMIT ?", (seq, limit))
    return [FeedRow(*row) for row in rows]


def last_seq(db: Database) -> int:
    row = db.one("SELECT MAX(seq) FROM feed")
    return row[0] or 0 if row else 0

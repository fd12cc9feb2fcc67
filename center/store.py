"""The center's durable record of received events, and the dedupe that goes with it.

Stores each event once, by id, still sealed to the center key (the envelope as received), so
the record is tamper-evident and holds no plaintext health data at rest. A receiver restart
does not re-alert: an id already here is a duplicate. Standard sqlite3 with synchronous=FULL,
because the home deletes an alarm as soon as we acknowledge it: the row must be on disk first.
"""

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from agent.sqltx import immediate

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id       TEXT PRIMARY KEY,
    home     TEXT NOT NULL,
    class    TEXT NOT NULL,
    topic    TEXT NOT NULL,
    envelope BLOB NOT NULL,
    received REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_by_home ON events (home, received);
CREATE TABLE IF NOT EXISTS presence (
    home         TEXT PRIMARY KEY,
    last_online  REAL NOT NULL,
    last_offline REAL NOT NULL
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class Received:
    id: str
    home: str
    cls: str
    topic: str
    envelope: bytes
    received: float


class EventStore:
    def __init__(self, path: Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)

    def record(self, batch: list[Received]) -> None:
        """Durably record a batch in one transaction (duplicates are ignored)."""
        self._write_all(
            "INSERT OR IGNORE INTO events (id, home, class, topic, envelope, received) VALUES (?,?,?,?,?,?)",
            [(r.id, r.home, r.cls, r.topic, r.envelope, r.received) for r in batch],
        )

    def _write_all(self, sql: str, rows: list[tuple]) -> None:
        """One durable transaction for many rows (the connection is in autocommit mode)."""
        with immediate(self._conn):
            self._conn.executemany(sql, rows)

    def known(self, ids: list[str]) -> set[str]:
        """Which of these ids are already recorded (shown before): the dedupe check."""
        found: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            found.update(r[0] for r in self._conn.execute(f"SELECT id FROM events WHERE id IN ({marks})", chunk))
        return found

    def replay_marks(self) -> dict[str, tuple[float, float]]:
        """Per home, the device times of the newest accepted online and offline status.

        Kept on disk so that a receiver restart does not let recorded heartbeats be replayed
        to make a dead home look alive.
        """
        return {h: (on, off) for h, on, off in self._conn.execute("SELECT home, last_online, last_offline FROM presence")}

    def save_replay_marks(self, marks: dict[str, tuple[float, float]]) -> None:
        self._write_all(
            "INSERT INTO presence (home, last_online, last_offline) VALUES (?,?,?) ON CONFLICT(home) "
            "DO UPDATE SET last_online=excluded.last_online, last_offline=excluded.last_offline",
            [(home, on, off) for home, (on, off) in marks.items()],
        )

    def count(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]

    def close(self) -> None:
        self._conn.close()

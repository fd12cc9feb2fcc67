"""The center's durable record of received events, and the dedupe that goes with it.

Stores each event once, by id, still sealed to the center key (the envelope as received), so
the record is tamper-evident and holds no plaintext health data at rest. A receiver restart
does not re-alert: an id already here is a duplicate. Standard sqlite3 with synchronous=FULL,
because the home deletes an alarm as soon as we acknowledge it: the row must be on disk first.

Also the look-in rounds' state (roundsdesk.py): each home's plan and camera state, the staff's
verdicts and which rounds alerts were shown. Those contents arrive here already sealed to the
center key; the plaintext columns are routing only (home, night, slot time, alert kind).

The file is created 0600 (SQLite gives its -wal and -shm files the same mode) and refused,
naming the chmod to run, when it or they are readable by others: the routing columns (which
home sent what class when, and how long it was) are themselves a record of every home's
alarm times, readable only by the receiver's own user.
"""

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from base.keys import check_database, create_private
from base.sqltx import immediate

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
CREATE TABLE IF NOT EXISTS lookin_homes (
    home   TEXT PRIMARY KEY,
    plan   BLOB,
    camera BLOB
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS lookin_records (
    seq    INTEGER PRIMARY KEY AUTOINCREMENT,
    home   TEXT NOT NULL,
    night  TEXT NOT NULL,
    slot   TEXT NOT NULL,
    record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS lookin_records_by_night ON lookin_records (night, home);
CREATE TABLE IF NOT EXISTS lookin_alerts (
    home   TEXT NOT NULL,
    night  TEXT NOT NULL,
    slot   TEXT NOT NULL,
    alert  TEXT NOT NULL,
    detail BLOB NOT NULL,
    PRIMARY KEY (home, night, slot, alert)
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
        check_database(Path(path), "the center's event store")
        create_private(Path(path))
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

    # -- look-in rounds: sealed blobs in, sealed blobs out -----------------------------------
    def writing(self):
        """One write transaction (BEGIN IMMEDIATE): read-decide-write without another writer between."""
        return immediate(self._conn)

    def data_version(self) -> int:
        """Changes when another connection (the CLI recording a verdict) commits."""
        return self._conn.execute("PRAGMA data_version").fetchone()[0]

    def lookin_homes(self) -> list[tuple[str, bytes | None, bytes | None]]:
        return self._conn.execute("SELECT home, plan, camera FROM lookin_homes").fetchall()

    def put_lookin_home(self, home: str, column: str, sealed: bytes) -> None:
        column = {"plan": "plan", "camera": "camera"}[column]
        with immediate(self._conn):
            self._conn.execute(f"INSERT INTO lookin_homes (home, {column}) VALUES (?, ?) "
                               f"ON CONFLICT(home) DO UPDATE SET {column}=excluded.{column}", (home, sealed))

    def lookin_records(self, night: str) -> list[tuple[str, str, bytes]]:
        """(home, slot, sealed record) of one night, in the order they were recorded."""
        return self._conn.execute("SELECT home, slot, record FROM lookin_records WHERE night=? ORDER BY seq",
                                  (night,)).fetchall()

    def add_lookin_record(self, home: str, night: str, slot: str, sealed: bytes) -> None:
        """Inside writing(): the caller has just checked the verdict against the night's records."""
        self._conn.execute("INSERT INTO lookin_records (home, night, slot, record) VALUES (?,?,?,?)",
                           (home, night, slot, sealed))

    def lookin_alerts(self, night: str) -> list[tuple[str, str, str, bytes]]:
        return self._conn.execute("SELECT home, slot, alert, detail FROM lookin_alerts WHERE night=?",
                                  (night,)).fetchall()

    def mark_lookin_alert(self, home: str, night: str, slot: str, alert: str, sealed: bytes) -> None:
        self._write_all("INSERT OR IGNORE INTO lookin_alerts (home, night, slot, alert, detail) VALUES (?,?,?,?,?)",
                        [(home, night, slot, alert, sealed)])

    def count(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]

    def close(self) -> None:
        self._conn.close()

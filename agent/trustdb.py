"""The device's trust database: who may command this home, what was seen, and what happened.

One SQLite file (`[trust] path`, default trust.db) holds the staff enrollment, the replay
cache of command ids, the hash-chained audit log and a few settings (the active center key,
the last audited config). One file, so an enrollment change and its audit entry commit in
the same transaction. Both the daemon and the technician's CLI open it; SQLite's locking
(BEGIN IMMEDIATE, a busy timeout) serializes their writes. Standard sqlite3 rather than
sqlite-utils: writes need exact transaction control and synchronous=FULL. Holds no health
data: command arguments are lock names, never anything about the resident.
"""

import os
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path

from .errors import StorageError
from .sqltx import immediate

_SCHEMA = """
CREATE TABLE IF NOT EXISTS staff (
    name        TEXT PRIMARY KEY,
    role        TEXT NOT NULL,
    kid         TEXT NOT NULL,
    public      TEXT NOT NULL,
    enrolled_at REAL NOT NULL,
    revoked_at  REAL
);
CREATE INDEX IF NOT EXISTS staff_by_kid ON staff (kid);
CREATE TABLE IF NOT EXISTS seen_commands (
    id         TEXT PRIMARY KEY,
    seen_at    REAL NOT NULL,
    keep_until REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit (
    seq    INTEGER PRIMARY KEY,
    time   REAL NOT NULL,
    synced INTEGER NOT NULL,
    kind   TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev   TEXT NOT NULL,
    hash   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"""


class TrustDB:
    """A connection to trust.db with one write transaction at a time (per process and across)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)  # created private, never widened
        os.close(fd)
        try:
            self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: cannot open the trust database ({exc})") from None
        self._lock = threading.RLock()

    @contextmanager
    def write(self):
        """One durable write transaction; everything inside commits together or not at all."""
        with self._lock, immediate(self.conn) as conn:
            yield conn

    @contextmanager
    def snapshot(self):
        """Several reads that see one state of the database, even while others write."""
        with self._lock:
            self.conn.execute("BEGIN")
            try:
                yield self.conn
            finally:
                self.conn.execute("COMMIT")

    def read(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self.conn.execute(sql, args).fetchall()

    def setting(self, key: str) -> str | None:
        rows = self.read("SELECT value FROM settings WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    @staticmethod
    def setting_in(conn: sqlite3.Connection, key: str) -> str | None:
        """Inside a write(): read one setting in the same transaction."""
        row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    @staticmethod
    def put_setting(conn: sqlite3.Connection, key: str, value: str) -> None:
        """Inside a write(): set one setting."""
        conn.execute("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                     (key, value))

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    def __enter__(self) -> "TrustDB":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

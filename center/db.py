"""The center's database connection: one small interface, two backends.

SQLite (a file, the default: one receiver, the demo, a small site) or PostgreSQL through
psycopg 3 (several receivers as one). Callers write SQL once, with `?` placeholders and the
common subset both speak (ON CONFLICT, RETURNING, partial indexes); this module turns `?` into
psycopg's `%s`. Schema differences live in migrations.py.

A write is a transaction (`with db.tx(lock=...) as tx`). `lock` names what must not be decided
by two writers at once (a home's open case, the case log's last hash, the feed's order): on
PostgreSQL it is a transaction-level advisory lock, on SQLite BEGIN IMMEDIATE already makes
every writer wait for the one before. A lost PostgreSQL connection raises StoreUnavailable;
the next call connects again, so a receiver rides out a database restart by retrying.
"""

import hashlib
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from base.errors import StorageError
from base.keys import check_database, create_private
from base.sqltx import immediate, use_wal


BUSY_TIMEOUT_S = 10.0  # SQLite: how long a writer waits for another (the CLI's case action, a view)
ROWS_PER_STATEMENT = 200  # SQLite allows 32,766 parameters per statement; 200 rows stay far below


class StoreUnavailable(StorageError):
    """The database cannot be reached or written now: record nothing, acknowledge nothing, retry."""


def parse_url(url: str | Path) -> tuple[str, str]:
    """("sqlite", path) or ("postgresql", url) from a [store] url: a path, sqlite:///PATH or postgresql://..."""
    text = str(url)
    scheme = urlsplit(text).scheme if "://" in text else ""
    if scheme in ("postgresql", "postgres"):
        return "postgresql", text
    if scheme == "sqlite":
        path = text[len("sqlite://"):]
        if not path.startswith("/"):
            raise ValueError(f"sqlite store url needs an absolute path (sqlite:///var/lib/...), got {text!r}")
        return "sqlite", path
    if scheme:
        raise ValueError(f"store url must be a file path, sqlite:///PATH or postgresql://..., got {text!r}")
    return "sqlite", text


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for a name (same on every receiver)."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class Database:
    """One connection. Thread-safe by a lock: give each busy thread its own Database."""

    dialect: str

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._current = threading.local()

    @contextmanager
    def tx(self, lock: str | None = None):
        """A write transaction; inside one already open on this thread, the same one (joined)."""
        with self._lock:
            outer = getattr(self._current, "tx", None)
            if outer is not None:
                if lock:
                    outer.lock(lock)
                yield outer
                return
            with self._begin() as tx:
                self._current.tx = tx
                try:
                    if lock:
                        tx.lock(lock)
                    yield tx
                finally:
                    self._current.tx = None

    def query(self, sql: str, params: tuple | list = ()) -> list[tuple]: ...
    def close(self) -> None: ...

    def one(self, sql: str, params: tuple | list = ()) -> tuple | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None


class _Tx:
    """What a transaction body uses: execute and fetch, same calls on both backends."""

    def __init__(self, cursor, convert, take_lock, dialect: str) -> None:
        self.dialect = dialect
        self._cursor = cursor
        self._convert = convert
        self._take_lock = take_lock
        self._held: set[str] = set()

    def lock(self, name: str) -> None:
        """Hold name's lock until this transaction ends (PostgreSQL; SQLite writers are serial anyway).

        Take locks in one order everywhere (a home's case, then the case log, then the feed),
        so two receivers never wait on each other.
        """
        if name not in self._held:
            self._held.add(name)
            self._take_lock(self, name)

    def execute(self, sql: str, params: tuple | list = ()) -> "_Tx":
        self._cursor.execute(self._convert(sql), params)
        return self

    def insert_rows(self, head: str, rows: list[tuple], tail: str = "") -> list[tuple]:
        """`head VALUES (?,..),(?,..) tail` for every row, ROWS_PER_STATEMENT rows per statement
        (a batch of 500 events is 3 round trips, not 500); what a RETURNING tail returns."""
        returned: list[tuple] = []
        for i in range(0, len(rows), ROWS_PER_STATEMENT):
            chunk = rows[i : i + ROWS_PER_STATEMENT]
            marks = "(" + ",".join("?" * len(chunk[0])) + ")"
            self._cursor.execute(self._convert(f"{head} VALUES {','.join([marks] * len(chunk))} {tail}"),
                                 [v for row in chunk for v in row])
            if "RETURNING" in tail:
                returned += self._cursor.fetchall()
        return returned

    def fetchall(self) -> list[tuple]:
        return self._cursor.fetchall()

    def fetchone(self) -> tuple | None:
        return self._cursor.fetchone()

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount


class SqliteDatabase(Database):
    dialect = "sqlite"

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        check_database(path, "the center's store")
        create_private(path)
        self.path = path
        super().__init__()
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_S)
        use_wal(self._conn, BUSY_TIMEOUT_S)
        self._conn.execute("PRAGMA synchronous=FULL")  # the home deletes what we acknowledge: on disk first

    @contextmanager
    def _begin(self):
        try:
            with immediate(self._conn):
                yield _Tx(self._conn.cursor(), _same, lambda tx, name: None, "sqlite")
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"the center's store {self.path}: {exc}") from exc

    def query(self, sql, params=()):
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class PostgresDatabase(Database):
    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__()
        self._conn = None
        self._connect()

    def _connect(self):
        import psycopg

        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5)
            except psycopg.Error as exc:
                raise StoreUnavailable(f"PostgreSQL at {_where(self.url)} cannot be reached: {_first_line(exc)}") from exc
        return self._conn

    @contextmanager
    def _begin(self):
        import psycopg

        try:
            conn = self._connect()
            with conn.transaction(), conn.cursor() as cursor:
                yield _Tx(cursor, _to_psycopg, _advisory_lock, "postgresql")
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self._drop()
            raise StoreUnavailable(f"PostgreSQL at {_where(self.url)}: {_first_line(exc)}") from exc

    def query(self, sql, params=()):
        import psycopg

        with self._lock:
            try:
                with self._connect().cursor() as cursor:
                    cursor.execute(_to_psycopg(sql), params)
                    return cursor.fetchall() if cursor.description else []
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self._drop()
                raise StoreUnavailable(f"PostgreSQL at {_where(self.url)}: {_first_line(exc)}") from exc

    def _drop(self) -> None:
        try:
            if self._conn is not None:
                self._conn.close()
        finally:
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self._drop()


def connect(url: str | Path) -> Database:
    kind, where = parse_url(url)
    return PostgresDatabase(where) if kind == "postgresql" else SqliteDatabase(where)


def _advisory_lock(tx: _Tx, name: str) -> None:
    tx.execute("SELECT pg_advisory_xact_lock(?)", (lock_key(name),))


def _same(sql: str) -> str:
    return sql


_converted: dict[str, str] = {}


def _to_psycopg(sql: str) -> str:
    """`?` placeholders to psycopg's `%s` (a literal % doubled). Our SQL never has ? in a string."""
    out = _converted.get(sql)
    if out is None:
        out = _converted[sql] = sql.replace("%", "%%").replace("?", "%s")
    return out


def _where(url: str) -> str:
    """host:port/db of a URL, without the password, for error messages and logs."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]

"""One durable SQLite write transaction, shared by the stores that use sqlite3 directly."""

import sqlite3
import time
from contextlib import contextmanager


@contextmanager
def immediate(conn: sqlite3.Connection):
    """BEGIN IMMEDIATE ... COMMIT on an autocommit connection; rolled back on any exception.

    IMMEDIATE takes the write lock up front, so a read-then-write inside (the audit chain's
    last hash, say) cannot race another process's writer.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def use_wal(conn: sqlite3.Connection, within_s: float) -> None:
    """Switch the file to WAL, waiting out another connection that is switching it too.

    Changing the journal mode needs the file to itself, and SQLite answers "database is locked"
    at once rather than through the busy timeout: two processes opening a new file together
    (two receivers starting, the daemon and the CLI) would otherwise fail one of them.
    """
    deadline = time.monotonic() + within_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)

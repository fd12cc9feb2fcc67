"""One durable SQLite write transaction, shared by the stores that use sqlite3 directly."""

import sqlite3
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

"""The outbox: sealed events waiting for the care center, in SQLite, surviving kill -9 and power loss.

It owns the database file and nothing else: it stores opaque sealed payloads (never plaintext)
with their routing metadata, hands them out alarms first, forgets them when delivered, and
keeps the file within its byte budget by dropping the least important rows first, counting
every drop. It never talks to the network.

Disk space is the SD card's, not ours alone: besides its own byte bound the outbox stops
growing when the file system's free space falls below `min_free_bytes` (new rows then take
the place of the oldest telemetry, then the oldest events), and it keeps a reserve file
(diskspace.py) that is given back when a write still fails for lack of space, so an alarm is
stored even on a full card. The WAL is kept small (`wal_autocheckpoint`, `journal_size_limit`,
a truncating checkpoint when the outbox empties): worst case on disk is the database (at most
about `max_bytes` plus SQLite's page slack), a WAL of about WAL_PAGES pages plus the largest
group commit, the 32 KiB shared-memory file, and the reserve (bench/outbox_disk.py measures it).

The standard `sqlite3` module is used directly (not sqlite-utils) because every commit's
durability matters here: WAL mode with synchronous=FULL, explicit transactions, and an
AUTOINCREMENT key so sequence numbers are never reused after deletes (the uplink's send
cursors rely on that). Callers get group commit through `GroupCommitter`.
"""

import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from .diskspace import Reserve, free_bytes
from base.errors import DiskFullError, StorageError
from base.sqltx import use_wal
from protocol.topics import CLASSES

log = logging.getLogger(__name__)

PRIORITY = {cls: prio for prio, cls in enumerate(CLASSES)}  # alarm 0 < event 1 < telemetry 2
ROW_OVERHEAD = 128  # bytes of index, key and page slack counted per row against max_bytes
SANE_EPOCH = 1704067200.0  # 2024-01-01: a clock before this has not been set since boot
SCHEMA_VERSION = 1
_CORRUPT_CODES = {sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB}
WAL_PAGES = 64  # checkpoint once the WAL holds this many pages (SQLite's default is 1000: 4 MiB)
WAL_LIMIT = 256 * 1024  # what a checkpointed WAL is truncated back to
BUSY_TIMEOUT_S = 30.0  # how long to wait for another connection's lock before calling the database unusable
NEARLY_FULL = 64 * 1024  # below this much free space an I/O error is taken to be the full disk (-shm, -wal)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    id      TEXT    NOT NULL UNIQUE,
    prio    INTEGER NOT NULL,
    topic   TEXT    NOT NULL,
    payload BLOB    NOT NULL,
    size    INTEGER NOT NULL,
    created REAL    NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_send_order ON outbox (prio, seq);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class Row:
    """One sealed event as stored: id and class are routing metadata, payload is ciphertext."""

    id: str
    cls: str
    topic: str
    payload: bytes
    created: float
    seq: int = 0

    @property
    def prio(self) -> int:
        return PRIORITY[self.cls]


@dataclass
class Losses:
    """Rows the outbox had to give up, per class: dropped for space, expired by TTL."""

    dropped: dict[str, int] = field(default_factory=lambda: {c: 0 for c in CLASSES})
    expired: dict[str, int] = field(default_factory=lambda: {c: 0 for c in CLASSES})

    def total(self) -> int:
        return sum(self.dropped.values()) + sum(self.expired.values())


class _Corrupt(Exception):
    """quick_check found damage."""


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_S)
    use_wal(conn, BUSY_TIMEOUT_S)
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(f"PRAGMA wal_autocheckpoint={WAL_PAGES}")
    conn.execute(f"PRAGMA journal_size_limit={WAL_LIMIT}")
    return conn


def open_checked(path: Path) -> tuple[sqlite3.Connection, str | None]:
    """Open the database, moving a corrupt file aside instead of crash-looping on it.

    Returns the connection and, when the old file was unusable, a note saying what happened.
    Only real corruption moves the file aside; a locked, read-only or failing disk raises
    StorageError instead (DiskFullError for a full one), because those rows are healthy and must
    still be sent.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = None
    try:
        conn = _connect(path)
        result = conn.execute("PRAGMA quick_check").fetchone()[0]
        if result != "ok":
            raise _Corrupt(result)
        conn.executescript(_SCHEMA)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        return conn, None
    except (sqlite3.DatabaseError, _Corrupt) as exc:
        if conn is not None:
            conn.close()
        if not isinstance(exc, _Corrupt) and getattr(exc, "sqlite_errorcode", None) not in _CORRUPT_CODES:
            full = _disk_full(exc, path.parent)
            raise (DiskFullError if full else StorageError)(f"cannot open outbox {path}: {exc}") from exc
        aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
        n = 1
        while Path(str(aside)).exists():  # never overwrite an earlier corrupt copy: it may hold alarms
            aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{n}")
            n += 1
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(path) + suffix)
            if src.exists():
                os.replace(src, Path(str(aside) + suffix))
        log.error("outbox %s unusable (%s); moved aside to %s, starting fresh", path, exc, aside)
        conn = _connect(path)
        conn.executescript(_SCHEMA)
        return conn, f"outbox database was corrupt ({str(exc)[:120]}); moved aside to {aside.name}"


class Outbox:
    """Durable, bounded, priority-ordered store of sealed events."""

    def __init__(
        self,
        path: Path,
        max_bytes: int,
        ttl_s: dict[str, float | None],
        clock: Callable[[], float] = time.time,
        reserve_bytes: int = 0,
        min_free_bytes: int = 0,
        on_disk_full: Callable[[Exception], None] = lambda exc: None,
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.min_free_bytes = min_free_bytes
        self.ttl_s = {**ttl_s, "alarm": None}  # alarms never expire
        self._clock = clock
        self._lock = threading.Lock()
        self.reserve = Reserve(self.path.with_name(self.path.name + ".reserve"), reserve_bytes)
        self.disk_full_count = 0  # writes that failed for lack of space, since start
        self._on_disk_full = on_disk_full  # told even when the reserve then saves the write
        try:
            self._conn, self.recovered_from = open_checked(self.path)
        except DiskFullError as exc:  # even opening needs room (-shm, -wal): the alarms in it must still go
            self.disk_full_count += 1
            on_disk_full(exc)
            if not self.reserve.release():
                raise
            log.error("outbox: %s; gave back the alarm reserve to open it", exc)
            self._conn, self.recovered_from = open_checked(self.path)
        self.reserve.ensure(keep_free=0)  # before anything else can fill the card
        with self._lock:
            self._recount()

    # -- writing -------------------------------------------------------------------------
    def put_many(self, rows: list[Row]) -> list[bool]:
        """Commit rows in one durable transaction; True for each row accepted.

        A row is refused (False, counted as dropped) only when it is not an alarm and the
        outbox is full of rows at least as important. Accepted means fsynced. When the disk
        is full the alarm reserve is given back and the write tried once more; DiskFullError
        if even that fails (nothing of the batch is then stored).
        """
        try:
            return self._put_many(rows)
        except DiskFullError as exc:
            self.disk_full_count += 1
            self._on_disk_full(exc)
            freed = self.reserve.release()
            if not freed:
                raise
            log.error("outbox: %s; gave back the %d-byte alarm reserve and tried again", exc, freed)
            accepted = self._put_many(rows)
            self.checkpoint()  # give the WAL's space back at once
            return accepted

    def _put_many(self, rows: list[Row]) -> list[bool]:
        accepted: list[bool] = []
        with self._lock, self._transaction():
            self._bound = self._room_bound()
            for row in rows:
                ok = self._make_room(row.prio, len(row.payload) + ROW_OVERHEAD)
                if ok:
                    self._conn.execute(
                        "INSERT INTO outbox (id, prio, topic, payload, size, created) VALUES (?,?,?,?,?,?)",
                        (row.id, row.prio, row.topic, row.payload, len(row.payload), row.created),
                    )
                    self._account(row.prio, 1, len(row.payload))
                else:
                    self._count("dropped", row.cls, 1)
                accepted.append(ok)
        return accepted

    def _room_bound(self) -> int:
        """The byte bound for this write: max_bytes, or less when the disk's free space runs low
        (then the file may not grow past what it holds now plus what is free above the margin)."""
        try:
            above_margin = free_bytes(self.path.parent) - self.min_free_bytes
        except OSError:
            return self.max_bytes
        return min(self.max_bytes, self._bytes + max(above_margin, 0))

    def _make_room(self, prio: int, need: int) -> bool:
        """Drop oldest telemetry, then oldest events (never alarms, never more important rows).

        A row that would not fit even after every droppable row is gone is refused up front,
        so nothing is dropped in vain; an alarm is always accepted.
        """
        bound = self._bound
        if self._bytes + need <= bound:
            return True
        if prio != 0:  # counted in memory: a full outbox must not scan its table for every new row
            droppable = sum(self._class_bytes[p] for p in range(prio, len(CLASSES)))
            if self._bytes - droppable + need > bound:
                return False
        for victim_prio in (2, 1):
            while self._bytes + need > bound and victim_prio >= prio:
                victims = self._conn.execute(
                    "SELECT seq, size FROM outbox WHERE prio=? ORDER BY seq LIMIT 64", (victim_prio,)
                ).fetchall()
                if not victims:
                    break
                for seq, size in victims:
                    self._conn.execute("DELETE FROM outbox WHERE seq=?", (seq,))
                    self._account(victim_prio, -1, -size)
                    self._count("dropped", CLASSES[victim_prio], 1)
                    if self._bytes + need <= bound:
                        break
        return self._bytes + need <= bound or prio == 0

    def delete(self, ids: Iterable[str]) -> int:
        """Forget delivered rows; returns how many were still here."""
        ids = list(ids)
        if not ids:
            return 0
        removed = 0
        with self._lock, self._transaction():
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                marks = ",".join("?" * len(chunk))
                gone = self._conn.execute(f"SELECT prio, size FROM outbox WHERE id IN ({marks})", chunk).fetchall()
                self._conn.execute(f"DELETE FROM outbox WHERE id IN ({marks})", chunk)
                removed += len(gone)
                for prio, size in gone:
                    self._account(prio, -1, -size)
        if removed and not any(self._depth):
            self.checkpoint()  # drained: the WAL goes back to nothing
        return removed

    def checkpoint(self) -> None:
        """Copy the WAL into the database and truncate it (after a drain, after a full disk)."""
        with self._lock:
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as exc:  # the data is safe in the WAL; only its space is not back yet
                log.warning("outbox: checkpoint failed: %s", exc)

    def keep_reserve(self) -> bool:
        """Make the alarm reserve whole again once the disk has room for it and the margin."""
        return self.reserve.ensure(keep_free=self.min_free_bytes)

    def disk(self) -> dict:
        """The file system under the outbox: what the center and `trygg status` show."""
        try:
            free = free_bytes(self.path.parent)
        except OSError:
            free = None
        files = sum(p.stat().st_size for p in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm"))
                    if p.exists())
        return {
            "free_bytes": free,
            "low": free is not None and free < self.min_free_bytes,
            "file_bytes": files,
            "reserve_bytes": self.reserve.held,
            "reserve_target_bytes": self.reserve.size,
            "disk_full_writes": self.disk_full_count,
        }

    def expire(self) -> int:
        """Delete event/telemetry rows older than their TTL; alarms never expire.

        Skipped while the wall clock is unset (before 2024), and rows stamped before the clock
        was set are never aged out: a clock jump must not look like days of old data.
        """
        now = self._clock()
        if now < SANE_EPOCH:
            return 0
        total = 0
        with self._lock, self._transaction():
            for cls, ttl in self.ttl_s.items():
                if ttl is None:
                    continue
                cond = "prio=? AND created>=? AND created<?"
                args = (PRIORITY[cls], SANE_EPOCH, now - ttl)
                n, size = self._conn.execute(
                    f"SELECT COUNT(*), COALESCE(SUM(size),0) FROM outbox WHERE {cond}", args
                ).fetchone()
                if n:
                    self._conn.execute(f"DELETE FROM outbox WHERE {cond}", args)
                    self._account(PRIORITY[cls], -n, -size)
                    self._count("expired", cls, n)
                    total += n
        return total

    def mark_reported(self, losses: Losses) -> None:
        """Record that these losses were reported to the center, so they are reported once."""
        with self._lock, self._transaction():
            for kind in ("dropped", "expired"):
                for cls, n in getattr(losses, kind).items():
                    if n:
                        self._add_counter(f"reported_{kind}_{cls}", n)

    def unreported_losses(self) -> Losses:
        """Losses counted but not yet reported to the center in a data_lost event."""
        with self._lock:
            total, reported = self._load_losses(), self._load_losses("reported_")
        out = Losses()
        for kind in ("dropped", "expired"):
            for cls in CLASSES:
                getattr(out, kind)[cls] = max(getattr(total, kind)[cls] - getattr(reported, kind)[cls], 0)
        return out

    # -- reading -------------------------------------------------------------------------
    def next_batch(self, after_seq: dict[int, int], limit: int, classes: int = len(CLASSES)) -> list[Row]:
        """Up to limit rows in send order (class priority, then age) past each class's cursor.

        classes=1 asks for alarms only.
        """
        out: list[Row] = []
        with self._lock:
            for prio in range(classes):
                if len(out) >= limit:
                    break
                out += self._rows("WHERE prio=? AND seq>? ORDER BY seq LIMIT ?",
                                  (prio, after_seq.get(prio, 0), limit - len(out)))
        return out

    def get(self, ids: Iterable[str]) -> list[Row]:
        """The rows for these ids that are still waiting (for re-sending)."""
        ids = list(ids)
        out: list[Row] = []
        with self._lock:
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                out += self._rows(f"WHERE id IN ({','.join('?' * len(chunk))})", chunk)
        return sorted(out, key=lambda r: (r.prio, r.seq))

    def _rows(self, where: str, args) -> list[Row]:
        return [
            Row(event_id, CLASSES[prio], topic, bytes(payload), created, seq)
            for seq, event_id, prio, topic, payload, created in self._conn.execute(
                f"SELECT seq, id, prio, topic, payload, created FROM outbox {where}", args
            )
        ]

    def stats(self) -> dict:
        """Depth and oldest age per class, bytes used, losses: what `trygg status` shows."""
        now = self._clock()
        classes = {}
        with self._lock:  # depths are kept in memory; the oldest row is one index lookup per class
            for prio, cls in enumerate(CLASSES):
                oldest = self._conn.execute(
                    "SELECT created FROM outbox WHERE prio=? ORDER BY seq LIMIT 1", (prio,)
                ).fetchone()
                age = None if oldest is None else round(max(now - oldest[0], 0.0), 3)
                classes[cls] = {"depth": self._depth[prio], "oldest_age_s": age}
            losses = self._load_losses()
        return {
            "classes": classes,
            "bytes": self._bytes,
            "max_bytes": self.max_bytes,
            "dropped": losses.dropped,
            "expired": losses.expired,
        }

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- internals -----------------------------------------------------------------------
    def _transaction(self):
        return _Transaction(self._conn, on_rollback=self._recount)

    def _recount(self) -> None:
        """Bytes and rows per class from the table itself (at start and after a rollback)."""
        self._bytes, self._depth, self._class_bytes = 0, [0] * len(CLASSES), [0] * len(CLASSES)
        for prio, n, size in self._conn.execute("SELECT prio, COUNT(*), SUM(size) FROM outbox GROUP BY prio"):
            self._account(prio, n, size)

    def _account(self, prio: int, rows: int, payload_bytes: int) -> None:
        self._depth[prio] += rows
        self._class_bytes[prio] += payload_bytes + rows * ROW_OVERHEAD
        self._bytes += payload_bytes + rows * ROW_OVERHEAD

    def _count(self, kind: str, cls: str, n: int) -> None:
        self._add_counter(f"{kind}_{cls}", n)

    def _add_counter(self, name: str, n: int) -> None:
        self._conn.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, n),
        )

    def _load_losses(self, prefix: str = "") -> Losses:
        counters = dict(self._conn.execute("SELECT name, value FROM counters").fetchall())
        out = Losses()
        for kind in ("dropped", "expired"):
            for cls in CLASSES:
                getattr(out, kind)[cls] = counters.get(f"{prefix}{kind}_{cls}", 0)
        return out


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception, mapped to StorageError."""

    def __init__(self, conn: sqlite3.Connection, on_rollback: Callable[[], None]) -> None:
        self.conn = conn
        self.on_rollback = on_rollback

    def __enter__(self):
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _storage_error(exc) from exc
        return self.conn

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            try:
                self.conn.execute("COMMIT")
                return False
            except sqlite3.Error as err:
                exc = err
        self._rollback()
        if isinstance(exc, sqlite3.Error):
            raise _storage_error(exc) from exc
        return False

    def _rollback(self) -> None:
        """SQLite may already have rolled back (disk full); either way recount what is stored."""
        try:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        finally:
            self.on_rollback()


def _disk_full(exc: sqlite3.Error, directory: Path) -> bool:
    """SQLITE_FULL, or an I/O error on a nearly full file system: growing the -shm file reports
    no space as SQLITE_IOERR_SHMSIZE, so opening an outbox on a full card looks like a failing disk."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL:
        return True
    if code is None or code & 0xFF != sqlite3.SQLITE_IOERR:
        return False
    try:
        return free_bytes(directory) < NEARLY_FULL
    except OSError:
        return False


def _storage_error(exc: sqlite3.Error) -> StorageError:
    """A full disk is told apart: it is the one failure the outbox can make room for itself."""
    full = getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    return (DiskFullError if full else StorageError)(f"outbox write failed: {exc}")

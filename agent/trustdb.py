"""The device's trust database: who may command this home, what was seen, and what happened.

One SQLite file (`[trust] path`, default trust.db) holds the staff enrollment, the replay
cache of command ids, the hash-chained audit log and a few settings (the active center key,
the last audited config, the drivers' small state). One file, so an enrollment change and its
audit entry commit in the same transaction. Both the daemon and the technician's CLI open it;
SQLite's locking (BEGIN IMMEDIATE, a busy timeout) serializes their writes. Standard sqlite3
rather than sqlite-utils: writes need exact transaction control and synchronous=FULL.

At rest (a stolen SD card, a copied file) the file keeps in plaintext only what the device
decides with and nothing about what happened to whom: staff key ids, roles and public keys;
replay ids; the grant's and the dispenser's counters; the audit entries' seq, time, kind and
a few non-personal fields (audit.py). Everything else is sealed with `AtRest`:
- to the care center's key (the device can never read it back): the audit entries' details;
- to this device's own key (the device reads it back after a restart): staff names, today's
  dose and motion counts, the open and recent doses (staff.py, devices.py). device.key is on
  the same card, so this protects trust.db on its own (a copy, a backup, a support dump), not
  a whole stolen card; it is the least the device must read back to keep working.
The file is created 0600 and refused at a wider mode; secure_delete overwrites what a write
replaces, so migrated plaintext does not linger in free pages. Files written without AtRest
(unit tests, older versions) are read as they are and sealed when a holder of the keys (the
daemon, a trust command) next opens them.
"""

import hashlib
import json
import secrets
import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from base.errors import StorageError
from base.keys import Identity, check_database, create_private, open_at_rest, seal_at_rest
from protocol.kem import KemPublic
from base.sqltx import immediate, use_wal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS staff (
    name        TEXT PRIMARY KEY,
    role        TEXT NOT NULL,
    kid         TEXT NOT NULL,
    public      TEXT NOT NULL,
    enrolled_at REAL NOT NULL,
    revoked_at  REAL,
    name_box    BLOB
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
    hash   TEXT NOT NULL,
    sealed BLOB
);
CREATE TABLE IF NOT EXISTS settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"""


# Columns added since the first version: (table, column, type). Added on open, so an older
# trust.db opens as it is (its rows have NULL there and are read in their old form).
_ADDED = (("audit", "sealed", "BLOB"), ("staff", "name_box", "BLOB"))


class AtRest:
    """The keys trust.db's private contents are sealed with (see the module docstring)."""

    def __init__(self, home: str, device: Identity, center: Callable[[], KemPublic]) -> None:
        self.home = home
        self.device = device
        self._center = center  # a callable: follows a center key switch

    def for_center(self, what: str, plain: bytes) -> bytes:
        return seal_at_rest(self._center(), plain, f"{self.home}/{what}")

    def for_device(self, what: str, plain: bytes) -> bytes:
        return seal_at_rest(self.device.kem.public, plain, f"{self.home}/{what}")

    def open_device(self, what: str, sealed: bytes) -> bytes:
        return open_at_rest([self.device.kem], sealed, f"{self.home}/{what}")


class TrustDB:
    """A connection to trust.db with one write transaction at a time (per process and across)."""

    def __init__(self, path: Path, at_rest: AtRest | None = None) -> None:
        self.path = Path(path)
        self.at_rest = at_rest
        check_database(self.path, "the trust database")  # refuse a file others can read, before any use
        create_private(self.path)  # created private, never widened; -wal and -shm get its mode
        try:
            self.conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
            use_wal(self.conn, 10)
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA secure_delete=ON")
            self.conn.executescript(_SCHEMA)
            for table, column, kind in _ADDED:
                if column not in {r[1] for r in self.conn.execute(f"PRAGMA table_info({table})")}:
                    self.conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: cannot open the trust database ({exc})") from None
        self._lock = threading.RLock()

    def scrub(self) -> None:
        """After plaintext was replaced by sealed rows: rebuild the file and empty the WAL, so
        no old page still holds it. Best effort: another connection may hold the file."""
        with self._lock:
            try:
                self.conn.execute("VACUUM")
                self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass

    @contextmanager
    def write(self):
        """One durable write transaction; everything inside commits together or not at all.
        A failure (a full card, say) is a StorageError, which callers on the alarm path survive."""
        try:
            with self._lock, immediate(self.conn) as conn:
                yield conn
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: write failed ({exc})") from exc

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

    def set_setting(self, key: str, value: str) -> None:
        """One setting, in a write transaction of its own."""
        with self.write() as conn:
            self.put_setting(conn, key, value)

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

    def remember_config(self, conn: sqlite3.Connection, shown: dict) -> list[str] | None:
        """Inside a write(): which settings ("section.key") differ from the config remembered at
        the last start, then remember this one. None on the first start.

        Remembered as salted digests per setting, not the config itself: the config names
        locks, devices and dose times, and the device only needs to know what changed.
        Reads the plain copy older versions kept, and replaces it.
        """
        old = TrustDB.setting_in(conn, "config")
        try:
            before = json.loads(old) if old is not None else None
        except ValueError:
            before = {}
        if isinstance(before, dict) and before.get("format") == _CONFIG_FORMAT:
            salt, before_digests = before.get("salt", ""), before.get("settings", {})
        else:
            salt = secrets.token_hex(16)
            before_digests = None if before is None else _config_digests(before, salt)
        after_digests = _config_digests(shown, salt)
        TrustDB.put_setting(conn, "config", json.dumps({"format": _CONFIG_FORMAT, "salt": salt,
                                                        "settings": after_digests}, sort_keys=True))
        if before_digests is None:
            return None
        names = {_setting_id(name, salt): name for name in _settings(shown)}
        return sorted(names.get(k, k.split(".")[0] + ".(removed)") for k in set(before_digests) | set(after_digests)
                      if before_digests.get(k) != after_digests.get(k))

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    def __enter__(self) -> "TrustDB":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_CONFIG_FORMAT = "trygg-config-digests-v1"


# Sections whose keys are names the home chose (a lock, a mat, a dispenser): kept only as digests.
NAMED_SECTIONS = frozenset({"locks", "mats", "buttons", "motion", "dispensers"})


def _settings(config: dict) -> dict[str, object]:
    """{"section.key": value} of a displayed config."""
    out = {}
    for section, values in (config or {}).items():
        for key, value in (values if isinstance(values, dict) else {"": values}).items():
            out[f"{section}.{key}" if key else section] = value
    return out


def _setting_id(name: str, salt: str) -> str:
    """A setting's name as remembered: as it is, or "section.<digest>" for a named device."""
    section, _, key = name.partition(".")
    if section not in NAMED_SECTIONS:
        return name
    return f"{section}." + hashlib.sha256(f"{salt}\x00{name}".encode()).hexdigest()[:16]


def _config_digests(config: dict, salt: str) -> dict[str, str]:
    return {_setting_id(name, salt): hashlib.sha256(
                f"{salt}\x00{name}\x00{json.dumps(value, sort_keys=True, default=str)}".encode()).hexdigest()
            for name, value in _settings(config).items()}

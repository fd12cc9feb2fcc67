"""`trygg audit verify` names a row whose stored types were changed: never "intact", never a crash.

The hash of an audit entry covers `bool(synced)` and `repr(float(time))`, so a value of another
type that converts to the same thing leaves the hash unchanged: a synced flag of 2 hashes like 1,
and a time could be rewritten as text. Only the type check in verify tells such a row from the
one the daemon wrote. These tests change trust.db with plain SQL, as someone with the SD card
would, and read only what the CLI says (exit 2 and "BROKEN at entry N" on stderr).

The rows are written by the real `AuditLog` with a synchronized fake clock, so every synced
flag is 1 and a change to 2 keeps the hash.
"""

import sqlite3
from datetime import datetime, timezone

import pytest

from agent.audit import AuditLog
from agent.trustdb import TrustDB
from tests.support.fakes import FakeClock
from tests.support.lab import trygg

EXIT_AUDIT_BROKEN = 2
T0 = datetime(2026, 11, 24, 21, 0, 0, 250000, tzinfo=timezone.utc)


@pytest.fixture(params=["plain", "sealed"])
def audited_home(lab, request):
    """A provisioned home (not running) whose audit trail has three entries, all synced: as an older
    version wrote them (plain), or as now kept (sealed at rest by the first trust command that opens it)."""
    home = lab.home("hem-audit")
    clock = FakeClock(T0, synced=True)
    with TrustDB(home.dir / "trust.db") as db:
        log = AuditLog(db, clock)
        for n in range(3):
            clock.advance(1.5)
            log.append("command", {"outcome": "refused", "reason": f"test {n}", "bytes": 1, "command": None,
                                   "action": None, "staff": None, "role": None})
        count = len(log.entries())
    if request.param == "sealed":
        code, out, err = verify(home)  # opens the trail with the keys: seals the entries, adds audit_sealed
        assert code == 0, (out, err)
        count = int(out.split(":")[1].split()[0])
    return home, count


def sql(home, statement: str, args: tuple = ()) -> None:
    db = sqlite3.connect(home.dir / "trust.db")
    try:
        db.execute(statement, args)
        db.commit()
    finally:
        db.close()


def verify(home) -> tuple[int, str, str]:
    proc = trygg("audit", "verify", "--config", home.config, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def test_untouched_trail_is_intact(audited_home):
    home, count = audited_home
    code, out, err = verify(home)
    assert code == 0 and out.startswith("audit trail intact: "), (out, err)


@pytest.mark.parametrize("change, value, stored_as", [
    ("synced", 2, "integer"),  # "synchronized" in the hash all the same: bool(2) is True
    ("synced", -1, "integer"),
    ("synced", 0.5, "real"),
    ("synced", "yes", "text"),
    ("time", "{iso}", "text"),  # the time rewritten as readable text
    ("time", b"\x00", "blob"),
    ("time", None, "null"),
], ids=["synced-2", "synced-minus-1", "synced-real", "synced-text", "time-iso-text", "time-blob", "time-null"])
def test_verify_names_a_row_whose_stored_type_was_changed(audited_home, change, value, stored_as):
    home, _ = audited_home
    seq = 2  # one of the fixture's own entries, in the middle of the chain
    if value == "{iso}":
        value = T0.isoformat()
    if value is None:  # NOT NULL: the table has to be rebuilt for this one, as a forger with the file could
        db = sqlite3.connect(home.dir / "trust.db")
        db.executescript("PRAGMA writable_schema = ON; UPDATE sqlite_schema SET sql = replace(sql, "
                         "'time   REAL NOT NULL', 'time   REAL') WHERE name = 'audit'; PRAGMA writable_schema = OFF;")
        db.close()
    sql(home, f"UPDATE audit SET {change} = ? WHERE seq = ?", (value, seq))
    stored = sqlite3.connect(home.dir / "trust.db").execute(
        f"SELECT typeof({change}) FROM audit WHERE seq = ?", (seq,)).fetchone()[0]
    assert stored == stored_as  # the column's affinity did not turn it back into what append() writes
    code, out, err = verify(home)
    assert code == EXIT_AUDIT_BROKEN, (code, out, err)
    assert f"audit trail BROKEN at entry {seq}: entry {seq} was altered" in err, err
    assert "Traceback" not in err


def test_synced_flag_2_keeps_the_hash_so_only_the_type_check_catches_it(audited_home):
    """The control for synced-2: the hash alone would pass it (so the test above holds the check)."""
    from agent.audit import entry_hash

    home, _ = audited_home
    db = sqlite3.connect(home.dir / "trust.db")
    prev, seq, time, synced, kind, detail, sealed, stored = db.execute(
        "SELECT prev, seq, time, synced, kind, detail, sealed, hash FROM audit WHERE seq = 2").fetchone()
    db.close()
    assert synced == 1 and entry_hash(prev, seq, time, 2, kind, detail, sealed) == stored


def test_verify_names_a_damaged_recorded_head_instead_of_crashing(audited_home):
    home, count = audited_home
    sql(home, "UPDATE settings SET value = 'not a head' WHERE key = 'audit_head'")
    code, out, err = verify(home)
    assert code == EXIT_AUDIT_BROKEN and "Traceback" not in err, (code, out, err)
    assert "audit trail BROKEN at entry" in err and "head" in err, err


@pytest.mark.parametrize("audited_home", ["sealed"], indirect=True)  # a plain-form row has no sealed detail
def test_verify_names_a_row_whose_sealed_detail_was_stored_as_text(audited_home):
    # The same bytes stored as TEXT hash alike (verify reads the column as bytes, so text that is
    # not UTF-8 cannot crash it): only the stored type tells this row from the one append() wrote.
    home, _ = audited_home
    sql(home, "UPDATE audit SET sealed = CAST(sealed AS TEXT) WHERE seq = 2 AND sealed IS NOT NULL")
    stored = sqlite3.connect(home.dir / "trust.db").execute("SELECT typeof(sealed) FROM audit WHERE seq = 2").fetchone()[0]
    assert stored == "text"
    code, out, err = verify(home)
    assert code == EXIT_AUDIT_BROKEN, (code, out, err)
    assert "audit trail BROKEN at entry 2: entry 2 was altered" in err and "Traceback" not in err, err

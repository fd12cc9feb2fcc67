"""Migrations of the center's store: an old SQLite file is rebuilt without losing a row, and
a 1 KiB sealed envelope takes about 1 KiB on disk, not a 4 KiB overflow page of its own."""

import os

from center import migrations
from center.db import SqliteDatabase

EVENT = ("ev-1", "hem-1", "alarm", "trygg/v1/hem-1/up/alarm", b"\x01" * 1024, 1.5)
CASE = ("case-1", "hem-1", "open", 1.5, None, None, None, 1.5, 2, 0, b"\x02" * 1100)
HOME = ("hem-1", "online", 1.0, 1.5, 60.0, "ok", 123, b"\x03" * 1500, 1.4)
LOOKIN = ("hem-1", b"\x04" * 1200, b"\x05" * 50)


def test_an_old_sqlite_store_is_rebuilt_with_every_row_and_index_kept(tmp_path, monkeypatch):
    db = SqliteDatabase(tmp_path / "center.db")
    monkeypatch.setattr(migrations, "STEPS", migrations.STEPS[:2])  # the store as the last release left it
    assert migrations.migrate(db) == 2
    with db.tx() as tx:
        tx.execute("INSERT INTO events VALUES (?,?,?,?,?,?)", EVENT)
        tx.execute("INSERT INTO cases VALUES (?,?,?,?,?,?,?,?,?,?,?)", CASE)
        tx.execute("INSERT INTO homes_state VALUES (?,?,?,?,?,?,?,?,?)", HOME)
        tx.execute("INSERT INTO lookin_homes VALUES (?,?,?)", LOOKIN)
    monkeypatch.undo()
    assert migrations.migrate(db) == migrations.STEPS[-1][0]
    assert db.query("SELECT * FROM events") == [EVENT]
    assert db.query("SELECT * FROM cases") == [CASE]
    assert db.query("SELECT * FROM homes_state") == [HOME]
    assert db.query("SELECT * FROM lookin_homes") == [LOOKIN]
    schema = dict(db.query("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
    for table in ("events", "cases", "homes_state", "lookin_homes"):
        assert "WITHOUT ROWID" not in schema[table], table
    indexes = {name for (name,) in db.query("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"events_by_home", "events_by_received", "cases_one_open_per_home", "cases_by_opened", "cases_open"} <= indexes
    with db.tx() as tx:  # still one open case per home
        try:
            tx.execute("INSERT INTO cases VALUES (?,?,?,?,?,?,?,?,?,?,?)", ("case-2", *CASE[1:]))
        except Exception as exc:
            assert "UNIQUE" in str(exc)
        else:
            raise AssertionError("a second open case for one home was accepted")
    db.close()


def test_a_year_of_1_kib_envelopes_takes_about_1_kib_each(tmp_path):
    db = SqliteDatabase(tmp_path / "center.db")
    migrations.migrate(db)
    before = db.query("PRAGMA page_count")[0][0]
    with db.tx() as tx:
        tx.insert_rows("INSERT INTO events (id, home, class, topic, envelope, received)",
                       [(f"ev-{i:05d}", "hem-1", "event", "t", os.urandom(1024), float(i)) for i in range(600)])
    page_size = db.query("PRAGMA page_size")[0][0]
    per_event = (db.query("PRAGMA page_count")[0][0] - before) * page_size / 600
    assert per_event < 1800, f"{per_event:.0f} bytes per 1 KiB envelope"  # was 4,600 in WITHOUT ROWID
    db.close()

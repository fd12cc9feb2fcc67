"""Outbox behaviours that mutation testing found no test holding (issue 13, "tests that would catch a lie").

Each test here fails when the behaviour it names breaks: a locked, read-only, failing or full
database is a StorageError and never "corrupt" (the file stays where it is); only quick_check's
verdict moves a file aside; a failed batch stores nothing and leaves counts true; the durability
settings are those of the live connection; re-sends go alarms first; eviction drops only what
makes room, at the exact byte and TTL edges; losses of both kinds reach data_lost; a low or
full card keeps the file from growing and the alarm reserve is given back and made again.

Real SQLite files; the full and read-only cards are small tmpfs mounts (root, as in CI and
tests/test_full_disk.py). Counts are checked against the file through a second connection.
"""

import sqlite3
import subprocess
from pathlib import Path

import pytest

from agent import outbox as outbox_module
from agent.commit import GroupCommitter
from agent.config import DeviceConfig
from agent.diskspace import Reserve, free_bytes
from base.errors import DiskFullError, StorageError
from agent.outbox import CLASSES, ROW_OVERHEAD, SANE_EPOCH, WAL_LIMIT, WAL_PAGES, Losses, Outbox, Row
from protocol import topics
from agent.uplink import Uplink
from tests.support.cards import fill
from tests.support.outboxkit import HOME, PAYLOAD, ROW_COST, T0, TTL, FakeClock, row

RESERVE = 256 * 1024


def waiting(ob: Outbox) -> list[str]:
    return [r.id for r in ob.next_batch({}, 10**6)]


def in_file(path: Path) -> dict:
    """What the file holds, through a connection of its own: depth per class and bytes as counted."""
    conn = sqlite3.connect(path)
    try:
        depth = dict.fromkeys(CLASSES, 0)
        total = 0
        for prio, n, size in conn.execute("SELECT prio, COUNT(*), SUM(size) FROM outbox GROUP BY prio"):
            depth[CLASSES[prio]] = n
            total += size + n * ROW_OVERHEAD
        counters = dict(conn.execute("SELECT name, value FROM counters").fetchall())
        return {"depth": depth, "bytes": total, "counters": counters}
    finally:
        conn.close()


def shown(ob: Outbox) -> dict:
    stats = ob.stats()
    return {"depth": {c: v["depth"] for c, v in stats["classes"].items()}, "bytes": stats["bytes"]}


def assert_counts_true(ob: Outbox) -> None:
    held = in_file(ob.path)
    assert shown(ob) == {"depth": held["depth"], "bytes": held["bytes"]}


def no_aside(directory: Path) -> bool:
    return not [p for p in directory.iterdir() if ".corrupt-" in p.name]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def opened():
    """Outboxes a test opened, closed afterwards (closing twice is harmless)."""
    boxes: list[Outbox] = []
    yield boxes
    for ob in boxes:
        try:
            ob.close()
        except sqlite3.Error:
            pass


@pytest.fixture
def open_outbox(tmp_path, clock, opened):
    def _open(path: Path | None = None, max_bytes: int = 64 * 1024 * 1024, **kw) -> Outbox:
        ob = Outbox(path or tmp_path / "outbox.db", max_bytes, dict(kw.pop("ttl", TTL)), clock=clock, **kw)
        opened.append(ob)
        return ob

    return _open


def remount(card: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(card)], check=True)


# -- storage errors are not corruption ----------------------------------------------------------


def test_a_locked_outbox_is_a_storage_error_and_its_alarms_stay_in_place(tmp_path, open_outbox, monkeypatch):
    monkeypatch.setattr(outbox_module, "BUSY_TIMEOUT_S", 0.2)  # the daemon waits 30 s; the verdict is the same
    db = tmp_path / "outbox.db"
    ob = open_outbox()
    ob.put_many([row("alarm", 0), row("telemetry", 0)])
    ob.close()
    before = db.read_bytes()
    holder = sqlite3.connect(db, isolation_level=None, timeout=0)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StorageError, match="locked") as caught:
            open_outbox()
        assert not isinstance(caught.value, DiskFullError)
        assert db.read_bytes() == before and no_aside(tmp_path), "a locked outbox was treated as corrupt"
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    again = open_outbox()
    assert again.recovered_from is None
    assert waiting(again) == ["alarm-00000", "telemetry-00000"]


def test_a_write_while_another_connection_holds_the_lock_stores_nothing_and_counts_stay_true(
        tmp_path, open_outbox, monkeypatch):
    monkeypatch.setattr(outbox_module, "BUSY_TIMEOUT_S", 0.2)
    ob = open_outbox(max_bytes=3 * ROW_COST)
    ob.put_many([row("telemetry", i) for i in range(3)])
    holder = sqlite3.connect(ob.path, isolation_level=None, timeout=0)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StorageError, match="locked"):
            ob.put_many([row("event", 0), row("alarm", 0)])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert waiting(ob) == [f"telemetry-{i:05d}" for i in range(3)]
    assert_counts_true(ob)
    assert ob.put_many([row("alarm", 1)]) == [True]
    assert_counts_true(ob)


def test_a_read_only_card_is_a_storage_error_and_nothing_is_moved(tmpfs, open_outbox):
    card = tmpfs("4m")
    db = card / "outbox.db"
    ob = open_outbox(db)
    ob.put_many([row("alarm", 0), row("event", 0)])
    ob.close()
    before = db.read_bytes()
    remount(card, "ro")  # a worn SD card goes read-only
    try:
        with pytest.raises(StorageError) as caught:
            open_outbox(db)
        assert not isinstance(caught.value, DiskFullError)
        assert db.read_bytes() == before and no_aside(card)
    finally:
        remount(card, "rw")
    assert waiting(open_outbox(db)) == ["alarm-00000", "event-00000"]


def test_an_outbox_path_that_cannot_be_opened_is_a_storage_error_not_corruption(tmp_path):
    db = tmp_path / "outbox.db"
    db.mkdir()  # a failing open: SQLITE_CANTOPEN
    (db / "keep").write_text("not ours to move")

    with pytest.raises(StorageError) as caught:
        Outbox(db, 10**6, dict(TTL))

    assert not isinstance(caught.value, DiskFullError)
    assert (db / "keep").read_text() == "not ours to move" and no_aside(tmp_path)


def test_an_outbox_with_alarms_opens_on_a_full_card_by_giving_back_the_reserve(tmpfs, open_outbox):
    """Opening needs room too (the -shm file grows as the WAL is read): the reserve is for this."""
    card = tmpfs("2m")
    db = card / "outbox.db"
    ob = open_outbox(db, reserve_bytes=RESERVE)
    ob.put_many([row("alarm", i) for i in range(5)] + [row("telemetry", i) for i in range(50)])
    ob.close()
    fill(card)
    told: list[Exception] = []

    again = open_outbox(db, reserve_bytes=RESERVE, on_disk_full=told.append)

    assert again.recovered_from is None and no_aside(card)
    assert waiting(again)[:5] == [f"alarm-{i:05d}" for i in range(5)]
    assert again.reserve.held == 0 and again.disk_full_count == 1
    assert len(told) == 1 and isinstance(told[0], DiskFullError)
    assert again.put_many([row("alarm", 5)]) == [True], "the reserve's room should also take a new alarm"


def test_without_a_reserve_a_full_card_is_disk_full_not_corrupt(tmpfs, open_outbox):
    card = tmpfs("2m")
    db = card / "outbox.db"
    ob = open_outbox(db)
    ob.put_many([row("alarm", i) for i in range(5)])
    ob.close()
    before = db.read_bytes()
    filler = fill(card)

    with pytest.raises(DiskFullError):
        open_outbox(db)

    assert db.read_bytes() == before and no_aside(card)
    with pytest.raises(DiskFullError):
        open_outbox(card / "fresh.db")  # a new file on a full card: SQLITE_FULL
    (card / "taken.db").mkdir()
    with pytest.raises(StorageError) as caught:
        open_outbox(card / "taken.db")  # full card, but this failure is not the lack of space
    assert not isinstance(caught.value, DiskFullError)
    filler.unlink()
    assert waiting(open_outbox(db)) == [f"alarm-{i:05d}" for i in range(5)]


def test_quick_checks_verdict_moves_a_damaged_outbox_aside_even_without_an_exception(tmp_path, open_outbox):
    db = tmp_path / "outbox.db"
    ob = open_outbox()
    ob.put_many([row("alarm", 0)] + [row("telemetry", i, size=2000) for i in range(40)])
    ob.delete([f"telemetry-{i:05d}" for i in range(40)])  # free pages on the freelist
    ob.close()
    data = bytearray(db.read_bytes())
    free_pages = int.from_bytes(data[36:40], "big")
    assert free_pages > 0
    data[36:40] = (free_pages + 3).to_bytes(4, "big")  # the header's freelist count no longer matches
    db.write_bytes(bytes(data))
    check = sqlite3.connect(db)
    verdict = check.execute("PRAGMA quick_check").fetchone()[0]
    check.close()
    assert verdict != "ok" and "freelist" in verdict  # a verdict, not an exception

    fresh = open_outbox()

    assert fresh.recovered_from is not None and "freelist" in fresh.recovered_from
    aside = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name and not p.name.endswith(("-wal", "-shm"))]
    assert len(aside) == 1 and aside[0].read_bytes() == bytes(data), "the damaged file must be kept as it was"
    assert waiting(fresh) == []


def test_the_live_connection_is_durable_and_keeps_its_wal_small(tmp_path, open_outbox):
    def settings(ob: Outbox) -> tuple:
        conn = ob._conn
        return tuple(conn.execute(f"PRAGMA {name}").fetchone()[0]
                     for name in ("journal_mode", "synchronous", "wal_autocheckpoint", "journal_size_limit"))

    expected = ("wal", 2, WAL_PAGES, WAL_LIMIT)  # synchronous=FULL is 2
    assert (WAL_PAGES, WAL_LIMIT) == (64, 256 * 1024)
    ob = open_outbox()
    assert settings(ob) == expected
    ob.close()
    (tmp_path / "outbox.db").write_bytes(b"not a database" + bytes(4096))
    recovered = open_outbox()  # the fresh file after a recovery is opened the same way
    assert recovered.recovered_from is not None
    assert settings(recovered) == expected


# -- a failed batch stores nothing --------------------------------------------------------------


def test_a_batch_failing_midway_commits_nothing_and_counts_stay_true(open_outbox):
    ob = open_outbox(max_bytes=4 * ROW_COST)
    ob.put_many([row("telemetry", i) for i in range(4)])
    before = in_file(ob.path)
    batch = [row("event", 0), row("alarm", 0), row("event", 1), row("alarm", 0)]  # each drops a telemetry row;
    # the last one then fails: its id is taken

    with pytest.raises(StorageError):
        ob.put_many(batch)

    assert in_file(ob.path) == before, "part of a failed batch (or its drops) was committed"
    assert waiting(ob) == [f"telemetry-{i:05d}" for i in range(4)]
    assert_counts_true(ob)
    assert ob.unreported_losses().total() == 0, "drops of a rolled-back batch were counted"
    assert ob.put_many([row("event", 2)]) == [True]  # still usable
    assert_counts_true(ob)


def test_a_batch_that_finds_the_card_full_stores_nothing_and_the_outbox_works_after(tmpfs, open_outbox):
    card = tmpfs("2m")
    ob = open_outbox(card / "outbox.db")  # no reserve: the failure reaches the caller
    ob.put_many([row("alarm", 0)])
    filler = fill(card)
    before = in_file(ob.path)

    with pytest.raises(DiskFullError):
        ob.put_many([row("alarm", 10 + i, size=8000) for i in range(40)])

    assert ob.disk_full_count == 1
    assert in_file(ob.path) == before
    assert_counts_true(ob)
    filler.unlink()
    assert ob.put_many([row("alarm", 1)]) == [True]
    assert waiting(ob) == ["alarm-00000", "alarm-00001"]
    assert_counts_true(ob)


# -- re-sends go alarms first -------------------------------------------------------------------


def test_rows_fetched_for_re_sending_come_alarms_first_then_oldest(open_outbox):
    ob = open_outbox()
    ob.put_many([row("telemetry", 0), row("event", 0), row("alarm", 0), row("telemetry", 1), row("alarm", 1),
                 row("event", 1)])

    got = ob.get(["telemetry-00001", "event-00001", "telemetry-00000", "alarm-00001", "event-00000", "alarm-00000"])

    assert [r.id for r in got] == ["alarm-00000", "alarm-00001", "event-00000", "event-00001", "telemetry-00000",
                                   "telemetry-00001"]


def test_the_uplink_re_sends_overtaken_messages_alarms_first(tmp_path, open_outbox):
    ob = open_outbox()
    ob.put_many([row("telemetry", 0), row("event", 0), row("telemetry", 1), row("alarm", 0), row("event", 1)])
    cfg = DeviceConfig.model_validate({
        "home": {"id": HOME},
        "broker": {"host": "broker.invalid", "ca": tmp_path / "ca", "cert": tmp_path / "c", "key": tmp_path / "k"},
    })
    uplink = Uplink(cfg, None, None, ob, clock=None)  # never started: only its re-send choice is asked
    try:
        held = Row("alarm-held", "alarm", topics.up(HOME, "alarm"), b"h" * 10, T0)  # not stored: a full card
        uplink._held[held.id] = held
        sent_order = ["telemetry-00000", "event-00000", "alarm-held", "telemetry-00001", "alarm-00000", "event-00001"]
        for at, event_id in enumerate(sent_order):
            uplink._awaiting.sent(event_id, CLASSES.index(event_id.split("-")[0]), float(at))
        uplink._awaiting.sent("later", 1, 100.0)
        uplink._awaiting.acked(["later"], 100.5)  # the center acknowledged something sent long after all of these

        again = uplink._due_resends(now=101.0, limit=10)

        assert [r.id for r in again] == ["alarm-held", "alarm-00000", "event-00000", "event-00001",
                                         "telemetry-00000", "telemetry-00001"]
    finally:
        uplink._wake_r.close()
        uplink._wake_w.close()


# -- eviction: only to make room, at the exact edges --------------------------------------------


def test_nothing_is_dropped_for_a_row_that_would_not_fit_anyway(open_outbox):
    ob = open_outbox(max_bytes=10 * ROW_COST)
    ob.put_many([row("alarm", i) for i in range(7)] + [row("event", 0), row("telemetry", 0), row("telemetry", 1)])
    big = 3 * PAYLOAD + 2 * ROW_OVERHEAD + 1  # one byte more than the three droppable rows free

    assert ob.put_many([row("event", 1, size=big)]) == [False]
    assert ob.put_many([row("telemetry", 2, size=2 * PAYLOAD + ROW_OVERHEAD + 1)]) == [False]

    assert waiting(ob) == [f"alarm-{i:05d}" for i in range(7)] + ["event-00000", "telemetry-00000",
                                                                    "telemetry-00001"]
    assert ob.stats()["dropped"] == {"alarm": 0, "event": 1, "telemetry": 1, "test": 0}, "only the refused rows count"
    assert_counts_true(ob)


def test_a_row_that_fits_exactly_once_every_droppable_row_is_gone_is_taken(open_outbox):
    ob = open_outbox(max_bytes=10 * ROW_COST)
    ob.put_many([row("alarm", i) for i in range(7)] + [row("event", 0), row("telemetry", 0), row("telemetry", 1)])
    exact = 3 * PAYLOAD + 2 * ROW_OVERHEAD

    assert ob.put_many([row("event", 1, size=exact)]) == [True]

    assert waiting(ob) == [f"alarm-{i:05d}" for i in range(7)] + ["event-00001"]
    assert ob.stats()["bytes"] == ob.max_bytes
    assert ob.stats()["dropped"] == {"alarm": 0, "event": 1, "telemetry": 2, "test": 0}
    assert_counts_true(ob)


def test_a_new_row_pushes_out_the_oldest_of_its_own_class(open_outbox):
    ob = open_outbox(max_bytes=3 * ROW_COST)
    ob.put_many([row("telemetry", i) for i in range(3)])
    assert ob.put_many([row("telemetry", 3)]) == [True]
    assert waiting(ob) == ["telemetry-00001", "telemetry-00002", "telemetry-00003"]

    events = open_outbox(tmp_path_of(ob) / "events.db", max_bytes=3 * ROW_COST)
    events.put_many([row("event", i) for i in range(3)])
    assert events.put_many([row("event", 3)]) == [True]
    assert waiting(events) == ["event-00001", "event-00002", "event-00003"]
    assert events.stats()["dropped"] == {"alarm": 0, "event": 1, "telemetry": 0, "test": 0}
    assert_counts_true(events)


def tmp_path_of(ob: Outbox) -> Path:
    return ob.path.parent


def test_a_row_exactly_at_the_byte_bound_is_taken_and_one_byte_more_is_not(open_outbox, tmp_path):
    ob = open_outbox(max_bytes=3 * ROW_COST)
    ob.put_many([row("event", 0), row("event", 1)])
    assert ob.put_many([row("telemetry", 0)]) == [True]  # exactly max_bytes, nothing dropped
    assert ob.stats()["bytes"] == ob.max_bytes
    assert ob.stats()["dropped"]["event"] == 0

    over = open_outbox(tmp_path / "over.db", max_bytes=3 * ROW_COST)
    over.put_many([row("event", 0), row("event", 1)])
    assert over.put_many([row("telemetry", 0, size=PAYLOAD + 1)]) == [False]
    assert waiting(over) == ["event-00000", "event-00001"]

    alone = open_outbox(tmp_path / "alone.db", max_bytes=ROW_COST)
    assert alone.put_many([row("telemetry", 0, size=PAYLOAD + 1), row("telemetry", 1)]) == [False, True]


def test_a_row_exactly_its_ttl_old_stays_and_a_moment_later_expires(open_outbox, clock):
    ob = open_outbox()
    ob.put_many([row("telemetry", 0), row("event", 0)])

    clock.t = T0 + TTL["telemetry"]  # created == now - ttl
    assert ob.expire() == 0
    clock.t = T0 + TTL["telemetry"] + 0.001
    assert ob.expire() == 1
    clock.t = T0 + TTL["event"]
    assert ob.expire() == 0
    clock.t = T0 + TTL["event"] + 0.001
    assert ob.expire() == 1
    assert waiting(ob) == []
    assert_counts_true(ob)


def test_a_row_stamped_exactly_when_clocks_count_as_set_can_expire(open_outbox, clock):
    clock.t = SANE_EPOCH + 10 * 86400
    ob = open_outbox()
    ob.put_many([row("telemetry", 0, created=SANE_EPOCH), row("telemetry", 1, created=SANE_EPOCH - 0.5)])

    assert ob.expire() == 1
    assert waiting(ob) == ["telemetry-00001"]


def test_data_lost_counts_dropped_and_expired_rows_and_reports_each_once(open_outbox, clock, tmp_path):
    ob = open_outbox(max_bytes=2 * ROW_COST)
    ob.put_many([row("telemetry", 0), row("telemetry", 1), row("event", 0)])  # telemetry-00000 dropped
    clock.t = T0 + TTL["telemetry"] + 1
    assert ob.expire() == 1  # telemetry-00001 expired

    losses = ob.unreported_losses()
    assert (losses.dropped, losses.expired) == ({"alarm": 0, "event": 0, "telemetry": 1, "test": 0},
                                                {"alarm": 0, "event": 0, "telemetry": 1, "test": 0})
    assert losses.total() == 2

    ob.put_many([row("event", 1), row("event", 2)])  # event-00000 dropped after the snapshot was taken
    ob.mark_reported(losses)
    left = ob.unreported_losses()
    assert (left.dropped, left.expired) == ({"alarm": 0, "event": 1, "telemetry": 0, "test": 0}, dict.fromkeys(CLASSES, 0))
    ob.close()

    again = open_outbox(max_bytes=2 * ROW_COST)
    assert again.unreported_losses().dropped == {"alarm": 0, "event": 1, "telemetry": 0, "test": 0}
    clock.t = T0 + TTL["event"] + 1
    assert again.expire() == 2
    assert again.unreported_losses().expired == {"alarm": 0, "event": 2, "telemetry": 0, "test": 0}
    again.mark_reported(again.unreported_losses())
    assert again.unreported_losses().total() == 0
    assert Losses(dropped={"alarm": 0, "event": 1, "telemetry": 0},
                  expired={"alarm": 0, "event": 0, "telemetry": 2}).total() == 3


# -- free space ---------------------------------------------------------------------------------


def test_below_the_free_space_margin_a_new_row_takes_the_oldest_telemetrys_place(tmp_path, open_outbox):
    ob = open_outbox()
    ob.put_many([row("telemetry", i) for i in range(20)])
    ob.close()
    low = open_outbox(min_free_bytes=free_bytes(tmp_path) + 10**12)  # far above what is free
    low.checkpoint()
    pages = low._conn.execute("PRAGMA page_count").fetchone()[0]
    before = low.stats()["bytes"]

    assert low.put_many([row("telemetry", 20)]) == [True]
    assert low.put_many([row("event", 0)]) == [True]

    assert waiting(low) == ["event-00000"] + [f"telemetry-{i:05d}" for i in range(2, 21)]
    assert low.stats()["bytes"] == before
    assert low.stats()["dropped"]["telemetry"] == 2
    low.checkpoint()
    assert low._conn.execute("PRAGMA page_count").fetchone()[0] == pages, "the file grew below the margin"
    assert low.disk()["low"] is True
    assert low.put_many([row("alarm", 0)]) == [True]  # an alarm still goes in
    assert_counts_true(low)


def test_with_room_above_the_margin_the_outbox_grows(tmp_path, open_outbox):
    ob = open_outbox(min_free_bytes=max(free_bytes(tmp_path) - 10 * 1024 * 1024, 0))
    ob.put_many([row("telemetry", i) for i in range(20)])
    assert ob.put_many([row("telemetry", 20)]) == [True]
    assert len(waiting(ob)) == 21 and ob.stats()["dropped"]["telemetry"] == 0
    assert ob.disk()["low"] is False


def test_the_reserve_is_given_back_on_a_full_card_and_made_again_once_there_is_room(tmpfs, open_outbox):
    card = tmpfs("2m")
    told: list[Exception] = []
    ob = open_outbox(card / "outbox.db", reserve_bytes=RESERVE, min_free_bytes=64 * 1024, on_disk_full=told.append)
    assert ob.reserve.held == RESERVE
    ob.put_many([row("alarm", 0)])
    filler = fill(card)
    assert ob.keep_reserve() is True, "a whole reserve is whole, however little is free"

    assert ob.put_many([row("alarm", 1, size=20000)]) == [True]  # the WAL must grow: the card is full

    assert ob.reserve.held == 0 and not ob.reserve.path.exists()
    assert ob.disk_full_count == 1 and len(told) == 1 and isinstance(told[0], DiskFullError)
    assert ob.disk()["reserve_bytes"] == 0 and ob.disk()["disk_full_writes"] == 1
    assert (card / "outbox.db-wal").stat().st_size == 0, "the WAL's space was not given back after the full disk"
    assert ob.keep_reserve() is False, "no room yet for the reserve"
    assert waiting(ob) == ["alarm-00000", "alarm-00001"]
    assert_counts_true(ob)

    filler.unlink()
    assert ob.keep_reserve() is True
    assert ob.reserve.held == RESERVE and ob.disk()["reserve_bytes"] == RESERVE
    ob.min_free_bytes = free_bytes(card)  # exactly at the margin is not low; a byte below is
    assert ob.disk()["low"] is False
    ob.min_free_bytes += 1
    assert ob.disk()["low"] is True


def test_the_reserve_is_made_only_when_the_margin_stays_free(tmpfs):
    card = tmpfs("2m")
    reserve = Reserve(card / "r", RESERVE)
    free = free_bytes(card)

    assert reserve.ensure(keep_free=free - RESERVE + 1) is False
    assert reserve.held == 0 and not reserve.path.exists()
    assert reserve.ensure(keep_free=free - RESERVE) is True  # leaves exactly the margin
    assert reserve.held == RESERVE
    assert reserve.release() == RESERVE and reserve.release() == 0

    fill(card)  # room by the numbers asked for, none on the card: the write fails and nothing half-made stays
    assert reserve.ensure(keep_free=-(2**40)) is False
    assert reserve.held == 0 and not reserve.path.exists()

    none = Reserve(card / "none", 0)
    assert none.ensure(keep_free=10**15) is True and none.held == 0 and not none.path.exists()


# -- what status and the uplink read ------------------------------------------------------------


def test_a_drained_outbox_gives_its_wal_back(open_outbox, tmp_path):
    ob = open_outbox()
    ob.put_many([row("telemetry", i, size=4000) for i in range(50)] + [row("alarm", 0)])
    wal = tmp_path / "outbox.db-wal"
    assert wal.stat().st_size > 0
    ob.delete([f"telemetry-{i:05d}" for i in range(50)])
    assert wal.stat().st_size > 0, "an alarm still waits: no truncating checkpoint yet"
    ob.delete(["alarm-00000"])
    assert wal.stat().st_size == 0


def test_disk_and_stats_say_what_is_on_the_card_and_how_old_the_oldest_row_is(open_outbox, clock, tmp_path):
    ob = open_outbox(reserve_bytes=64 * 1024)
    ob.put_many([row("telemetry", 0, created=T0 - 30), row("telemetry", 1), row("event", 0, created=T0 + 50),
                 row("alarm", 0, created=T0 - 12.5)])
    ob.min_free_bytes = 10**15  # the card is now below the margin

    disk = ob.disk()
    files = sum(p.stat().st_size for p in tmp_path.iterdir() if p.name.startswith("outbox.db") and
                not p.name.endswith(".reserve"))
    assert disk["file_bytes"] == files > 0
    assert disk["low"] is True and 0 < disk["free_bytes"] < 10**15
    assert (disk["reserve_bytes"], disk["reserve_target_bytes"], disk["disk_full_writes"]) == (64 * 1024, 64 * 1024, 0)

    ages = {c: v["oldest_age_s"] for c, v in ob.stats()["classes"].items()}
    assert ages == {"alarm": 12.5, "event": 0.0, "telemetry": 30.0, "test": None}  # a row from the future is 0 s old, not negative
    ob.delete(["alarm-00000"])
    assert ob.stats()["classes"]["alarm"] == {"depth": 0, "oldest_age_s": None}


def test_alarms_only_batches_hold_no_other_class(open_outbox):
    ob = open_outbox()
    ob.put_many([row("telemetry", 0), row("event", 0), row("alarm", 0), row("alarm", 1)])
    assert [r.id for r in ob.next_batch({}, 10, classes=1)] == ["alarm-00000", "alarm-00001"]
    first = ob.next_batch({}, 10, classes=1)[0]
    assert [r.id for r in ob.next_batch({0: first.seq}, 10, classes=1)] == ["alarm-00001"]
    assert [r.id for r in ob.next_batch({}, 3)] == ["alarm-00000", "alarm-00001", "event-00000"]


def test_an_outbox_in_a_directory_not_yet_made_is_made(tmp_path, clock):
    ob = Outbox(tmp_path / "state" / "trygg" / "outbox.db", 10**6, dict(TTL), clock=clock)
    try:
        assert ob.put_many([row("alarm", 0)]) == [True]
    finally:
        ob.close()


# -- group commit: callers hear of every failure --------------------------------------------------


def test_callers_of_the_group_committer_hear_a_storage_failure_instead_of_waiting(open_outbox, monkeypatch):
    monkeypatch.setattr(outbox_module, "BUSY_TIMEOUT_S", 0.2)
    ob = open_outbox()
    committer = GroupCommitter(ob, 0.0)
    holder = sqlite3.connect(ob.path, isolation_level=None, timeout=0)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StorageError, match="locked"):
            committer.put(row("telemetry", 0))
        with pytest.raises(StorageError, match="locked"):
            committer.put(row("alarm", 0))  # in the caller's own thread
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert committer.alive(), "one failed commit must not stop the writer"
    assert committer.put(row("telemetry", 1)) is True
    committer.close()
    assert not committer.alive()
    assert waiting(ob) == ["telemetry-00001"]


def test_a_row_queued_after_the_writer_stopped_is_an_error_not_a_hang(open_outbox):
    committer = GroupCommitter(open_outbox(), 0.0)
    committer.close()
    assert not committer.alive()
    with pytest.raises(StorageError, match="writer has stopped"):
        committer.put(row("event", 0))  # noticed at the first 5 s check


def test_a_corrupt_outbox_finds_a_free_name_even_when_several_are_taken(tmp_path, open_outbox):
    import time

    db = tmp_path / "outbox.db"
    taken = []
    now = time.time()
    for second in range(4):  # every name the next few seconds could give, and its first alternative
        stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(now + second))
        for name in (f"outbox.db.corrupt-{stamp}", f"outbox.db.corrupt-{stamp}-1"):
            (tmp_path / name).write_bytes(name.encode())
            taken.append(tmp_path / name)
    db.write_bytes(b"garbage, not a database" + bytes(1000))

    fresh = open_outbox()

    assert fresh.recovered_from is not None
    assert all(p.read_bytes() == p.name.encode() for p in taken), "an earlier corrupt copy was overwritten"
    new = [p for p in tmp_path.iterdir() if ".corrupt-" in p.name and p not in taken]
    assert [p.read_bytes()[:23] for p in new] == [b"garbage, not a database"]
    assert new[0].name.endswith("-2"), f"the next free name is the second alternative, got {new[0].name}"


def test_the_outbox_keeps_to_max_bytes_when_free_space_cannot_be_read(tmp_path, clock):
    import shutil

    home = tmp_path / "gone"
    ob = Outbox(home / "outbox.db", 3 * ROW_COST, dict(TTL), clock=clock, min_free_bytes=10**15)
    try:
        ob.put_many([row("alarm", 0)])
        shutil.rmtree(home)  # statvfs now fails; the open files live on
        assert ob.put_many([row("telemetry", 0), row("telemetry", 1), row("telemetry", 2)]) == [True, True, True]
        assert waiting(ob) == ["alarm-00000", "telemetry-00001", "telemetry-00002"]  # max_bytes, not "no room"
        assert (ob.disk()["free_bytes"], ob.disk()["low"]) == (None, False)
    finally:
        ob.close()


def test_a_row_that_is_not_a_row_fails_the_whole_batch(open_outbox):
    ob = open_outbox()
    bad = Row("bogus-0", "bogus", "t/bogus", b"x", T0)  # a class the outbox does not know
    with pytest.raises(KeyError):
        ob.put_many([row("alarm", 0), bad])
    assert waiting(ob) == []
    assert_counts_true(ob)

"""The outbox: alarms first, nothing committed is lost, bounded on disk, losses counted.

Real SQLite files under tmp_path, a real child process killed with SIGKILL, and an injected
wall clock for TTLs. The group committer is exercised with real threads.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from agent.commit import GroupCommitter
from agent.outbox import SANE_EPOCH, Outbox, Row
from protocol import topics
from tests.support.outboxkit import HOME, ROW_COST, T0, TTL, FakeClock, ids, row

def waiting(outbox: Outbox) -> list[str]:
    """Every waiting id in send order."""
    return ids(outbox.next_batch({}, 10**6))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def open_outbox(tmp_path, clock):
    """Factory: open (or reopen) the outbox file under tmp_path; everything closed afterwards."""
    opened: list[Outbox] = []

    def _open(max_bytes: int = 64 * 1024 * 1024, ttl=None, path: Path | None = None) -> Outbox:
        ob = Outbox(path or tmp_path / "outbox.db", max_bytes, dict(ttl or TTL), clock=clock)
        opened.append(ob)
        return ob

    yield _open
    for ob in opened:
        ob.close()  # closing twice is harmless


# -- send order --------------------------------------------------------------------------


def test_alarm_overtakes_backlog_of_telemetry_and_events(open_outbox):
    ob = open_outbox()
    assert all(ob.put_many([row("telemetry", i) for i in range(1000)]))
    assert all(ob.put_many([row("event", i) for i in range(500)]))
    assert ob.put_many([row("alarm", 0)]) == [True]

    batch = ob.next_batch({}, 10)

    assert ids(batch) == ["alarm-00000"] + [f"event-{i:05d}" for i in range(9)]
    first = batch[0]
    assert (first.cls, first.topic, first.payload) == ("alarm", topics.up(HOME, "alarm"), row("alarm", 0).payload)


def test_send_cursors_skip_sent_rows_and_a_new_alarm_still_goes_first(open_outbox):
    ob = open_outbox()
    ob.put_many([row("telemetry", i) for i in range(300)])
    ob.put_many([row("event", i) for i in range(150)])
    ob.put_many([row("alarm", 0)])
    cursor: dict[int, int] = {}
    sent: list[str] = []

    def send(limit: int = 100) -> list[str]:
        batch = ob.next_batch(cursor, limit)
        for r in batch:
            cursor[r.prio] = max(cursor.get(r.prio, 0), r.seq)
        sent.extend(ids(batch))
        return ids(batch)

    assert send()[:2] == ["alarm-00000", "event-00000"]
    assert send()[0] == "event-00099"  # events continue where the cursor stopped
    ob.put_many([row("alarm", 1)])  # a new alarm while the backlog drains
    assert send()[0] == "alarm-00001"
    while send():
        pass

    expected = (["alarm-00000"] + [f"event-{i:05d}" for i in range(150)] + [f"telemetry-{i:05d}" for i in range(300)]
                + ["alarm-00001"])
    assert sorted(sent) == sorted(expected)
    assert len(sent) == len(set(sent)), "a row was handed out twice past its cursor"
    assert ob.next_batch(cursor, 100) == []


# -- durability --------------------------------------------------------------------------


def test_committed_rows_survive_closing_and_reopening(open_outbox):
    ob = open_outbox()
    rows = [row("alarm", 1), row("event", 2), row("telemetry", 3)]
    assert ob.put_many(rows) == [True, True, True]
    before = ob.stats()["bytes"]
    ob.close()

    again = open_outbox()

    assert again.recovered_from is None
    assert [(r.id, r.cls, r.topic, r.payload, r.created) for r in again.next_batch({}, 10)] == [
        (r.id, r.cls, r.topic, r.payload, r.created) for r in rows
    ]
    assert again.stats()["bytes"] == before == 3 * ROW_COST


_WRITER = r"""
import os, sys, threading
from agent.outbox import Outbox, Row
from agent.commit import GroupCommitter

path, mode, prefix = sys.argv[1:4]
ob = Outbox(path, 10**9, {"event": 86400.0, "telemetry": 86400.0})
classes = ["alarm", "event", "telemetry"]
lock = threading.Lock()

def say(event_id):
    with lock:
        os.write(1, (event_id + "\n").encode())  # one write per id: a line is whole or absent

def make(name, n):
    cls = classes[n % 3]
    return Row(name, cls, "trygg/v1/hem-1/up/" + cls, os.urandom(64), 1.75e9)

if mode == "put_many":
    n = 0
    while True:
        rows = [make(f"{prefix}-{n + k}", n + k) for k in range(1 + n % 4)]
        n += len(rows)
        for r, ok in zip(rows, ob.put_many(rows)):
            if ok:
                say(r.id)
else:
    committer = GroupCommitter(ob, 0.002)

    def worker(t):
        n = 0
        while True:
            r = make(f"{prefix}-{t}-{n}", n)
            n += 1
            if committer.put(r):
                say(r.id)

    for t in range(4):
        threading.Thread(target=worker, args=(t,), daemon=True).start()
    threading.Event().wait()
"""


@pytest.mark.parametrize("mode", ["put_many", "group_commit"])
def test_every_id_reported_committed_survives_kill_9(tmp_path, mode):
    db = tmp_path / "outbox.db"
    printed: list[str] = []
    for round_no, kill_after in enumerate((1, 40, 250)):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(db), mode, f"r{round_no}"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            seen = 0
            while seen < kill_after:
                line = proc.stdout.readline()
                if not line:
                    pytest.fail(f"writer exited early: {proc.stderr.read().decode()[-2000:]}")
                printed.append(line.decode().strip())
                seen += 1
            os.kill(proc.pid, signal.SIGKILL)  # right after it said "committed"
            assert proc.wait(timeout=10) == -signal.SIGKILL
            # Lines it printed before dying but we had not read yet were committed too.
            rest = proc.stdout.read().decode()
            printed += [line for line in rest.split("\n")[:-1] if line]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()

    ob = Outbox(db, 10**9, dict(TTL))
    try:
        assert ob.recovered_from is None
        found = {r.id for r in ob.get(printed)}
        missing = [i for i in printed if i not in found]
        assert not missing, f"{len(missing)} of {len(printed)} committed ids lost after kill -9: {missing[:5]}"
        assert len(printed) >= 291
    finally:
        ob.close()


# -- bounded on disk ---------------------------------------------------------------------


def test_full_outbox_drops_oldest_telemetry_then_oldest_events_and_never_an_alarm(open_outbox):
    ob = open_outbox(max_bytes=10 * ROW_COST)
    assert all(ob.put_many([row("telemetry", i) for i in range(10)]))

    assert ob.put_many([row("event", i) for i in range(4)]) == [True] * 4
    assert waiting(ob) == [f"event-{i:05d}" for i in range(4)] + [f"telemetry-{i:05d}" for i in range(4, 10)]

    assert all(ob.put_many([row("event", i) for i in range(4, 10)]))
    assert waiting(ob) == [f"event-{i:05d}" for i in range(10)]

    assert ob.put_many([row("alarm", i) for i in range(3)]) == [True] * 3
    assert waiting(ob) == [f"alarm-{i:05d}" for i in range(3)] + [f"event-{i:05d}" for i in range(3, 10)]

    assert all(ob.put_many([row("alarm", i) for i in range(3, 10)]))
    assert waiting(ob) == [f"alarm-{i:05d}" for i in range(10)]

    # Alarms are accepted even beyond the bound: an alarm is never refused for space.
    assert ob.put_many([row("alarm", i) for i in range(10, 15)]) == [True] * 5
    assert waiting(ob) == [f"alarm-{i:05d}" for i in range(15)]
    assert ob.stats()["bytes"] == 15 * ROW_COST > ob.max_bytes

    stats = ob.stats()
    assert stats["dropped"] == {"alarm": 0, "event": 10, "telemetry": 10, "test": 0}
    assert ob.unreported_losses().dropped == {"alarm": 0, "event": 10, "telemetry": 10, "test": 0}


def test_telemetry_is_refused_when_outbox_is_full_of_events(open_outbox):
    ob = open_outbox(max_bytes=10 * ROW_COST)
    ob.put_many([row("event", i) for i in range(10)])

    assert ob.put_many([row("telemetry", 0)]) == [False]

    assert waiting(ob) == [f"event-{i:05d}" for i in range(10)], "a refused row must not cost older events"
    assert ob.stats()["dropped"] == {"alarm": 0, "event": 0, "telemetry": 1, "test": 0}
    assert ob.unreported_losses().dropped["telemetry"] == 1


def test_events_and_telemetry_are_refused_when_outbox_is_full_of_alarms(open_outbox):
    ob = open_outbox(max_bytes=10 * ROW_COST)
    ob.put_many([row("alarm", i) for i in range(12)])

    assert ob.put_many([row("telemetry", 0), row("event", 0)]) == [False, False]

    assert waiting(ob) == [f"alarm-{i:05d}" for i in range(12)]
    assert ob.stats()["dropped"] == {"alarm": 0, "event": 1, "telemetry": 1, "test": 0}


def test_reported_losses_are_not_reported_again_even_after_reopen(open_outbox):
    ob = open_outbox(max_bytes=4 * ROW_COST)
    ob.put_many([row("telemetry", i) for i in range(4)] + [row("event", i) for i in range(6)])
    losses = ob.unreported_losses()
    assert losses.dropped == {"alarm": 0, "event": 2, "telemetry": 4, "test": 0}
    assert losses.total() == 6

    ob.mark_reported(losses)
    assert ob.unreported_losses().total() == 0
    ob.close()

    again = open_outbox(max_bytes=4 * ROW_COST)
    assert again.unreported_losses().total() == 0
    assert again.stats()["dropped"] == {"alarm": 0, "event": 2, "telemetry": 4, "test": 0}, "history of drops is kept"
    again.put_many([row("event", 99)])  # one more drop after reporting
    assert again.unreported_losses().dropped == {"alarm": 0, "event": 1, "telemetry": 0, "test": 0}


# -- TTL -----------------------------------------------------------------------------------


def test_events_and_telemetry_expire_after_their_ttl_and_are_counted(open_outbox, clock):
    ob = open_outbox()
    ob.put_many([row("telemetry", 0), row("telemetry", 1), row("event", 0), row("alarm", 0),
                 row("telemetry", 2, created=T0 + 500)])

    clock.t = T0 + 599
    assert ob.expire() == 0
    clock.t = T0 + 601
    assert ob.expire() == 2
    assert waiting(ob) == ["alarm-00000", "event-00000", "telemetry-00002"]
    clock.t = T0 + 1101
    assert ob.expire() == 1
    clock.t = T0 + 3601
    assert ob.expire() == 1
    assert waiting(ob) == ["alarm-00000"]

    assert ob.stats()["expired"] == {"alarm": 0, "event": 1, "telemetry": 3, "test": 0}
    assert ob.unreported_losses().expired == {"alarm": 0, "event": 1, "telemetry": 3, "test": 0}
    assert ob.stats()["bytes"] == ROW_COST


def test_alarms_never_expire_even_if_configured_with_a_ttl(open_outbox, clock):
    ob = open_outbox(ttl={**TTL, "alarm": 1.0})
    ob.put_many([row("alarm", 0), row("event", 0)])

    clock.t = T0 + 10 * 365 * 86400
    ob.expire()

    assert waiting(ob) == ["alarm-00000"]
    assert ob.stats()["expired"]["alarm"] == 0


def test_nothing_expires_while_the_pi_clock_is_unset(open_outbox, clock):
    boot = 10.0  # a Pi without RTC boots in 1970
    clock.t = boot + 7200
    ob = open_outbox()
    ob.put_many([row("telemetry", 0, created=boot), row("event", 0, created=boot), row("telemetry", 1, created=T0)])

    assert ob.expire() == 0

    assert waiting(ob) == ["event-00000", "telemetry-00000", "telemetry-00001"]
    assert ob.unreported_losses().total() == 0


def test_rows_stamped_before_the_clock_was_set_are_not_aged_out_by_the_jump(open_outbox, clock):
    clock.t = 100.0
    ob = open_outbox()
    ob.put_many([row("telemetry", 0, created=50.0), row("event", 0, created=SANE_EPOCH - 1)])
    ob.put_many([row("telemetry", 1, created=T0 - 700)])  # stamped after sync, really old

    clock.t = T0  # NTP sets the clock: decades "pass" in an instant
    assert ob.expire() == 1

    assert waiting(ob) == ["event-00000", "telemetry-00000"]


# -- delete ----------------------------------------------------------------------------------


def test_delivered_rows_are_deleted_by_id_and_stay_deleted(open_outbox):
    ob = open_outbox()
    ob.put_many([row("alarm", 0), row("event", 0), row("event", 1), row("telemetry", 0)])

    assert ob.delete(["event-00000", "alarm-00000", "no-such-id"]) == 2
    assert ob.delete([]) == 0
    assert ob.delete(["event-00000"]) == 0

    assert waiting(ob) == ["event-00001", "telemetry-00000"]
    assert ob.get(["alarm-00000", "event-00001"]) == [r for r in ob.next_batch({}, 10) if r.id == "event-00001"]
    assert ob.stats()["bytes"] == 2 * ROW_COST
    ob.close()
    again = open_outbox()
    assert waiting(again) == ["event-00001", "telemetry-00000"]
    assert again.stats()["bytes"] == 2 * ROW_COST


def test_deleting_many_ids_at_once_frees_their_bytes(open_outbox):
    ob = open_outbox()
    ob.put_many([row("telemetry", i) for i in range(1200)])
    assert ob.delete([f"telemetry-{i:05d}" for i in range(1200)]) == 1200
    assert waiting(ob) == []
    assert ob.stats()["bytes"] == 0


# -- corruption --------------------------------------------------------------------------


def _aside(tmp_path: Path) -> list[Path]:
    return sorted(p for p in tmp_path.iterdir() if ".corrupt-" in p.name and not p.name.endswith(("-wal", "-shm")))


def test_garbage_database_file_is_moved_aside_and_a_fresh_outbox_opens(open_outbox, tmp_path):
    ob = open_outbox()
    ob.put_many([row("alarm", 0)])
    ob.close()
    garbage = os.urandom(3) + b"this is not a database" + os.urandom(8192)
    (tmp_path / "outbox.db").write_bytes(garbage)

    fresh = open_outbox()

    assert fresh.recovered_from is not None and "corrupt" in fresh.recovered_from
    aside = _aside(tmp_path)
    assert len(aside) == 1 and aside[0].name in fresh.recovered_from
    assert aside[0].read_bytes() == garbage
    assert waiting(fresh) == []
    assert fresh.put_many([row("alarm", 1)]) == [True]
    assert waiting(fresh) == ["alarm-00001"]
    fresh.close()
    assert open_outbox().recovered_from is None


def test_sqlite_file_with_overwritten_pages_is_moved_aside(open_outbox, tmp_path):
    ob = open_outbox()
    ob.put_many([row("telemetry", i, size=200) for i in range(600)])
    ob.close()
    db = tmp_path / "outbox.db"
    data = bytearray(db.read_bytes())
    page = 4096
    assert len(data) > 12 * page
    data[3 * page:9 * page] = os.urandom(6 * page)
    db.write_bytes(bytes(data))
    assert db.read_bytes().startswith(b"SQLite format 3\x00")

    fresh = open_outbox()

    assert fresh.recovered_from is not None and "corrupt" in fresh.recovered_from
    aside = _aside(tmp_path)
    assert len(aside) == 1 and aside[0].read_bytes() == bytes(data)
    assert waiting(fresh) == []
    assert fresh.put_many([row("alarm", 0)]) == [True]


def test_each_corrupt_file_is_kept_even_when_corruption_repeats_quickly(open_outbox, tmp_path):
    """A moved-aside file may hold committed alarms; a second recovery must not overwrite it."""
    db = tmp_path / "outbox.db"
    contents = []
    for n in range(3):
        ob = open_outbox()
        ob.close()
        garbage = f"garbage number {n} ".encode() + os.urandom(4096)
        contents.append(garbage)
        db.write_bytes(garbage)
    last = open_outbox()
    assert last.recovered_from is not None

    aside = _aside(tmp_path)
    assert len(aside) == 3, f"only {len(aside)} of 3 corrupt files kept: {[p.name for p in aside]}"
    assert sorted(p.read_bytes() for p in aside) == sorted(contents)


# -- group commit ------------------------------------------------------------------------


@pytest.fixture
def committer_for(open_outbox):
    made: list[GroupCommitter] = []

    def _make(window_s: float, **kw) -> GroupCommitter:
        c = GroupCommitter(open_outbox(**kw), window_s)
        made.append(c)
        return c

    yield _make
    for c in made:
        c.close()


def test_many_threads_putting_at_once_are_all_committed(committer_for):
    committer = committer_for(0.005)
    classes = ("alarm", "event", "telemetry")
    results: dict[str, bool] = {}
    lock = threading.Lock()

    def worker(t: int) -> None:
        for n in range(40):
            r = row(classes[(t + n) % 3], t * 1000 + n)
            ok = committer.put(r)
            with lock:
                results[r.id] = ok

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)

    assert len(results) == 640 and all(results.values())
    stored = committer.outbox.get(list(results))
    assert len(stored) == 640
    assert all(r.payload == row(r.cls, int(r.id.split("-")[1])).payload for r in stored)


def test_refused_row_is_reported_false_through_the_committer(committer_for):
    committer = committer_for(0.0, max_bytes=2 * ROW_COST)
    assert committer.put(row("event", 0)) and committer.put(row("event", 1))
    assert committer.put(row("telemetry", 0)) is False
    assert committer.put(row("alarm", 0)) is True


def test_alarm_is_not_held_back_by_the_group_commit_window(committer_for):
    window = 0.5
    committer = committer_for(window)

    # The window is real: telemetry alone waits for it (otherwise this test proves nothing).
    start = time.monotonic()
    assert committer.put(row("telemetry", 0))
    assert time.monotonic() - start >= 0.8 * window

    start = time.monotonic()
    assert committer.put(row("alarm", 0))
    assert time.monotonic() - start < 0.25, "an alarm alone waited for the group-commit window"

    # An alarm arriving while the writer is already waiting out a telemetry window.
    done = {}

    def put_telemetry():
        done["telemetry"] = committer.put(row("telemetry", 1))

    t = threading.Thread(target=put_telemetry)
    t.start()
    deadline = time.monotonic() + 2
    while not committer._queue.empty() and time.monotonic() < deadline:
        time.sleep(0.001)  # until the writer has taken the telemetry row and opened its window
    start = time.monotonic()
    assert committer.put(row("alarm", 1))
    elapsed = time.monotonic() - start
    t.join(5)
    assert elapsed < 0.25, f"alarm waited {elapsed:.3f} s behind a telemetry window"
    assert done["telemetry"] is True
    assert {r.id for r in committer.outbox.get(["telemetry-00001", "alarm-00001"])} == {"telemetry-00001", "alarm-00001"}


def test_status_depths_stay_true_through_puts_drops_deletes_and_reopen(tmp_path):
    """stats() keeps depths in memory; they must always equal what the table holds."""
    from agent.outbox import CLASSES, Outbox
    from protocol.ids import new_id

    def table_depths(box):
        rows = box._conn.execute("SELECT prio, COUNT(*) FROM outbox GROUP BY prio").fetchall()
        return {CLASSES[p]: n for p, n in rows}

    def shown(box):
        return {c: v["depth"] for c, v in box.stats()["classes"].items() if v["depth"]}

    box = Outbox(tmp_path / "o.db", 64 * 1024, {"event": 60.0, "telemetry": 60.0}, clock=lambda: 1.8e9)
    rows = [Row(new_id(), cls, f"t/{cls}", b"x" * 300, 1.8e9) for cls in ["telemetry"] * 150 + ["event"] * 30 + ["alarm"] * 5]
    box.put_many(rows)  # overflows: telemetry is dropped to make room
    assert shown(box) == table_depths(box)
    box.delete([r.id for r in rows[150:160]] + [rows[-1].id])
    assert shown(box) == table_depths(box)
    box.close()
    box = Outbox(tmp_path / "o.db", 64 * 1024, {"event": 60.0, "telemetry": 60.0}, clock=lambda: 1.8e9 + 120)
    assert shown(box) == table_depths(box)
    box.expire()
    assert shown(box) == table_depths(box) == {"alarm": 4}
    box.close()

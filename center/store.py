"""The center's durable record of received events, presence and rounds, on either backend.

Stores each event once, by id, still sealed to the center key (the envelope as received), so
the record is tamper-evident and holds no plaintext health data at rest. An id already here is
a duplicate: shown once, whatever number of receivers took it in (the insert decides, not a
read before it). The home deletes an alarm as soon as we acknowledge it, so the transaction
commits (fsynced: SQLite synchronous=FULL, PostgreSQL's default) before any acknowledgement.

Each new event, presence change and card-state change gets a feed row (feed.py) in the same
transaction: views show what is recorded, once. Presence is state (homes_state), so a view
started at 02:00 knows the home that went offline at 01:00; the conditional updates here make
each change happen once even when two receivers hear the same status.

Also the look-in rounds' state (roundsdesk.py), sealed to the center key. The SQLite file is
created 0600 and refused when others can read it (db.py): the routing columns are themselves
a record of every home's alarm times.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import feed
from .db import Database, connect
from .migrations import migrate


@dataclass(frozen=True)
class Received:
    id: str
    home: str
    cls: str
    topic: str
    envelope: bytes
    received: float


@dataclass(frozen=True)
class HomeState:
    home: str
    state: str
    since: float
    last_heard: float | None
    heartbeat_s: float
    storage: str | None
    free_bytes: int | None
    report: bytes | None
    report_at: float | None


OnNew = Callable[[object, list[Received]], list[tuple]]  # (tx, new events) -> more feed rows


class EventStore:
    def __init__(self, url: str | Path) -> None:
        self.db: Database = connect(url)
        migrate(self.db)

    # -- events --------------------------------------------------------------------------------
    def record(self, batch: list[Received], on_new: OnNew | None = None) -> list[Received]:
        """Durably record a batch in one transaction; return the events not recorded before.

        on_new runs inside the same transaction with the new events (cases are opened there)
        and returns more feed rows; the events' own feed rows and the homes' last-heard times
        are written with them.
        """
        with self.db.tx() as tx:
            inserted = {row[0] for row in tx.insert_rows(
                "INSERT INTO events (id, home, class, topic, envelope, received)",
                [(r.id, r.home, r.cls, r.topic, r.envelope, r.received) for r in batch],
                "ON CONFLICT (id) DO NOTHING RETURNING id")}
            new = []
            for r in batch:  # in arrival order, each once (a batch may hold a re-sent copy)
                if r.id in inserted:
                    inserted.discard(r.id)
                    new.append(r)
            heard: dict[str, float] = {}
            for r in batch:
                heard[r.home] = max(heard.get(r.home, 0.0), r.received)
            self._heard(tx, heard)
            rows = on_new(tx, new) if (on_new and new) else []
            feed.append(tx, [(r.received, "event", r.home, r.id) for r in new] + rows)
        return new

    def known(self, ids: list[str]) -> set[str]:
        """Which of these ids are already recorded (shown before): the dedupe check."""
        found: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            found.update(r[0] for r in self.db.query(f"SELECT id FROM events WHERE id IN ({marks})", chunk))
        return found

    def events(self, ids: list[str]) -> dict[str, Received]:
        """The recorded events with these ids (a view opens them to show them)."""
        out: dict[str, Received] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.db.query(f"SELECT id, home, class, topic, envelope, received FROM events "
                                     f"WHERE id IN ({marks})", chunk):
                out[row[0]] = Received(row[0], row[1], row[2], row[3], bytes(row[4]), row[5])
        return out

    def events_of(self, home: str, since: float = 0.0) -> list[Received]:
        """One home's events received since a time, oldest first (the audit chain check, reports)."""
        rows = self.db.query("SELECT id, home, class, topic, envelope, received FROM events "
                             "WHERE home = ? AND received >= ? ORDER BY received", (home, since))
        return [Received(r[0], r[1], r[2], r[3], bytes(r[4]), r[5]) for r in rows]

    def count(self) -> int:
        return self.db.one("SELECT COUNT(*) FROM events")[0]

    def ping(self) -> None:
        """StoreUnavailable unless the store answers (and takes writes: SQLite's lock is free)."""
        with self.db.tx():
            pass

    # -- presence: replay marks (per status), and state (per home) -----------------------------
    def replay_marks(self) -> dict[str, tuple[float, float]]:
        """Per home, the device times of the newest accepted online and offline status.

        Kept on disk so that a receiver restart does not let recorded heartbeats be replayed
        to make a dead home look alive.
        """
        return {h: (on, off) for h, on, off in self.db.query("SELECT home, last_online, last_offline FROM presence")}

    def save_replay_marks(self, marks: dict[str, tuple[float, float]]) -> None:
        with self.db.tx() as tx:
            tx.insert_rows("INSERT INTO presence (home, last_online, last_offline)",
                           [(home, on, off) for home, (on, off) in marks.items()],
                           "ON CONFLICT (home) DO UPDATE SET last_online=excluded.last_online, "
                           "last_offline=excluded.last_offline")

    def _heard(self, tx, heard: dict[str, float]) -> None:
        """Hearing from a home (any message) keeps it known; its first event makes it online."""
        tx.insert_rows("INSERT INTO homes_state (home, state, since, last_heard)",
                       [(home, "online", at, at) for home, at in sorted(heard.items())],
                       "ON CONFLICT (home) DO UPDATE SET last_heard = excluded.last_heard")

    def set_presence(self, home: str, state: str, now: float, heartbeat_s: float | None,
                     heard: float | None) -> bool:
        """Record a home's presence (heard: when we last heard from it, if this status says);
        True, with a feed row, only for the one writer that changed it."""
        with self.db.tx() as tx:
            if heartbeat_s:
                tx.execute("UPDATE homes_state SET heartbeat_s = ? WHERE home = ?", (heartbeat_s, home))
            if heard is not None:
                tx.execute("UPDATE homes_state SET last_heard = ? WHERE home = ?", (heard, home))
            tx.execute("INSERT INTO homes_state (home, state, since, last_heard, heartbeat_s) VALUES (?,?,?,?,?) "
                       "ON CONFLICT (home) DO NOTHING", (home, state, now, heard, heartbeat_s or 60))
            changed = tx.rowcount == 1
            if not changed:
                changed = tx.execute("UPDATE homes_state SET state = ?, since = ? WHERE home = ? AND state <> ?",
                                     (state, now, home, state)).rowcount == 1
            if changed:
                feed.append(tx, [(now, "presence", home, state)])
        return changed

    def mark_silent(self, now: float, after_heartbeats: float) -> list[str]:
        """Online homes not heard from for after_heartbeats periods become silent, each once."""
        with self.db.tx() as tx:
            rows = tx.execute("UPDATE homes_state SET state = 'silent', since = ? WHERE state = 'online' "
                              "AND last_heard IS NOT NULL AND last_heard < ? - ? * heartbeat_s RETURNING home",
                              (now, now, after_heartbeats)).fetchall()
            homes = sorted(r[0] for r in rows)
            feed.append(tx, [(now, "presence", home, "silent") for home in homes])
        return homes

    def set_storage(self, home: str, storage: str, free_bytes: int | None, now: float) -> bool:
        """A home's card state; True (and a feed row) only when it changed, once."""
        with self.db.tx() as tx:
            tx.execute("UPDATE homes_state SET free_bytes = ? WHERE home = ?", (free_bytes, home))
            changed = tx.execute("UPDATE homes_state SET storage = ? WHERE home = ? AND COALESCE(storage, 'ok') <> ?",
                                 (storage, home, storage)).rowcount == 1
            if changed:
                feed.append(tx, [(now, "storage", home, storage)])
        return changed

    def set_report(self, home: str, sealed: bytes, now: float) -> None:
        """The home's latest fleet report, as sealed by the device (opened only to show it)."""
        with self.db.tx() as tx:
            tx.execute("UPDATE homes_state SET report = ?, report_at = ? WHERE home = ?", (sealed, now, home))

    def homes(self) -> dict[str, HomeState]:
        return home_states(self.db)

    # -- the receivers themselves ------------------------------------------------------------
    def receiver_beat(self, name: str, state: str, now: float, broker: str | None = None) -> None:
        """A receiver says it is alive, whether it reaches the broker and what it learned of the
        broker's limits (JSON, brokerlimits.py); a change of state goes to the feed."""
        with self.db.tx() as tx:
            tx.execute("INSERT INTO receivers (name, state, since, beat) VALUES (?,?,?,?) ON CONFLICT (name) DO NOTHING",
                       (name, state, now, now))
            changed = tx.rowcount == 1 or tx.execute(
                "UPDATE receivers SET state = ?, since = ? WHERE name = ? AND state <> ?", (state, now, name, state)
            ).rowcount == 1
            tx.execute("UPDATE receivers SET beat = ?, broker = COALESCE(?, broker) WHERE name = ?", (now, broker, name))
            if changed:
                feed.append(tx, [(now, "receiver", None, f"{name}:{state}")])

    def first_rejection(self, topic: str, payload: bytes, now: float) -> bool:
        """A retained message we reject comes again at every (re)subscription: report it once."""
        digest = hashlib.sha256(payload).hexdigest()[:32]
        with self.db.tx() as tx:
            tx.execute("INSERT INTO rejected_retained (topic, digest, at) VALUES (?,?,?) ON CONFLICT DO NOTHING",
                       (topic, digest, now))
            return tx.rowcount == 1

    def receivers(self) -> list[tuple[str, str, float, float]]:
        return self.db.query("SELECT name, state, since, beat FROM receivers ORDER BY name")

    def receiver_reports(self) -> list[tuple[str, str, float, float, str | None]]:
        """As receivers(), with each one's broker report (JSON text, or None before its first)."""
        return self.db.query("SELECT name, state, since, beat, broker FROM receivers ORDER BY name")

    # -- look-in rounds: sealed blobs in, sealed blobs out -----------------------------------
    def writing(self):
        """One write transaction: read-decide-write without another writer between."""
        return self.db.tx(lock="rounds")

    def rounds_version(self) -> tuple:
        """Changes when any receiver or the CLI recorded a verdict or an alert."""
        return (self.db.one("SELECT MAX(seq) FROM lookin_records")[0],
                self.db.one("SELECT COUNT(*) FROM lookin_alerts")[0])

    def lookin_homes(self) -> list[tuple[str, bytes | None, bytes | None]]:
        return [(h, _bytes(plan), _bytes(camera)) for h, plan, camera in
                self.db.query("SELECT home, plan, camera FROM lookin_homes")]

    def put_lookin_home(self, home: str, column: str, sealed: bytes) -> None:
        column = {"plan": "plan", "camera": "camera"}[column]
        with self.db.tx() as tx:
            tx.execute(f"INSERT INTO lookin_homes (home, {column}) VALUES (?, ?) "
                       f"ON CONFLICT (home) DO UPDATE SET {column}=excluded.{column}", (home, sealed))

    def lookin_records(self, night: str) -> list[tuple[str, str, bytes]]:
        """(home, slot, sealed record) of one night, in the order they were recorded."""
        return [(h, slot, bytes(rec)) for h, slot, rec in
                self.db.query("SELECT home, slot, record FROM lookin_records WHERE night=? ORDER BY seq", (night,))]

    def add_lookin_record(self, home: str, night: str, slot: str, sealed: bytes) -> None:
        """Inside writing(): the caller has just checked the verdict against the night's records."""
        with self.db.tx() as tx:
            tx.execute("INSERT INTO lookin_records (home, night, slot, record) VALUES (?,?,?,?)",
                       (home, night, slot, sealed))

    def lookin_alerts(self, night: str) -> list[tuple[str, str, str, bytes]]:
        return [(h, slot, alert, bytes(detail)) for h, slot, alert, detail in
                self.db.query("SELECT home, slot, alert, detail FROM lookin_alerts WHERE night=?", (night,))]

    def mark_lookin_alert(self, home: str, night: str, slot: str, alert: str, sealed: bytes, at: float,
                          also: Callable[[object], list[tuple]] | None = None) -> bool:
        """Record a rounds alert as raised; True (with its feed row, and what `also` adds in the
        same transaction: a case for a visit) only for the one writer that raised it."""
        with self.db.tx() as tx:
            tx.execute("INSERT INTO lookin_alerts (home, night, slot, alert, detail) VALUES (?,?,?,?,?) "
                       "ON CONFLICT (home, night, slot, alert) DO NOTHING", (home, night, slot, alert, sealed))
            if tx.rowcount != 1:
                return False
            rows = also(tx) if also else []
            feed.append(tx, [(at, "lookin", home, f"{night}|{slot}|{alert}")] + rows)
        return True

    def close(self) -> None:
        self.db.close()


def home_states(db: Database) -> dict[str, HomeState]:
    """Every home the store has heard of, with its presence and last fleet report."""
    rows = db.query("SELECT home, state, since, last_heard, heartbeat_s, storage, free_bytes, report, report_at "
                    "FROM homes_state")
    return {r[0]: HomeState(*r[:7], _bytes(r[7]), r[8]) for r in rows}


def _bytes(value) -> bytes | None:
    return None if value is None else bytes(value)

#!/usr/bin/env python3
"""year: a year of a 300-home municipality in the center's store; how big, how fast to read.

The store is filled through the code the receiving service runs: EventStore.record with the
CaseDesk opening cases in the same transaction, and staff case actions signed and checked by
CaseDesk.act (accept a minute after the alarm, on site at 15 minutes, closed at 30, with an
outcome). Per home and day: Poisson(YEAR_ALARMS) alarms, YEAR_EVENTS events and YEAR_TELEMETRY
telemetry messages at random times; the alarms of one home on one day form one case (they
arrive while it is open). Envelopes are real ones, signed and sealed by a home's key and padded
as on the wire, drawn from a pool (the store keeps them opaque: size, not content, matters).
The build runs with fsync off (its speed is not a figure); the figures are taken afterwards
by the CLI as staff would run it, fsync back on:
  - the store's size on disk, and per home and year;
  - `trygg center cases --since 30d --json` and `trygg center homes --json`: median of 3 runs,
    whole process (start-up included).
Sizes: YEAR_HOMES (300), YEAR_DAYS (365), YEAR_ALARMS (1.5), YEAR_EVENTS (20), YEAR_TELEMETRY (4).
YEAR_STORE=postgresql puts the year in a throwaway PostgreSQL server instead of SQLite.
"""

import math
import os
import random
import statistics
import subprocess
import time
from pathlib import Path

from _common import env_float, env_int, header, result, say, temp_root

HOMES = env_int("YEAR_HOMES", 300)
DAYS = env_int("YEAR_DAYS", 365)
ALARMS = env_float("YEAR_ALARMS", 1.5)
EVENTS = env_int("YEAR_EVENTS", 20)
TELEMETRY = env_int("YEAR_TELEMETRY", 4)
STORE = os.environ.get("YEAR_STORE", "sqlite")
ALARM_KINDS = ("fall", "help", "bed_exit", "door_open")
OUTCOMES = ("helped", "helped", "helped", "false_alarm", "injured", "ambulance", "not_home", "technical")


def poisson(rand: random.Random, mean: float) -> int:
    """Knuth's method: fine for a mean this small."""
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rand.random()
        if p <= limit:
            return k
        k += 1


def main() -> None:
    from base.keys import Identity, load_public, write_public
    from base.labpki import make_lab_pki
    from center import config as cfgmod
    from center.service import case_desk
    from center.staffsign import SignedAction
    from center.store import EventStore, Received
    from protocol import envelope, topics
    from protocol.ids import new_id
    from protocol.messages import EventMessage, encode
    from tests.support.lab import ENV, TRYGG, Lab, edit_toml
    from tests.support.pg import PostgresServer

    header(f"year: {HOMES} homes x {DAYS} days in the {STORE} store "
           f"({ALARMS} alarms, {EVENTS} events, {TELEMETRY} telemetry per home and day)")
    rand = random.Random(2026)
    with temp_root("year") as root:
        pg = PostgresServer() if STORE == "postgresql" else None
        if pg:
            pg.start()
        try:
            pki = make_lab_pki(root / "pki", ["center"])
            lab = Lab(root, pki, 1)  # no broker: the CLI's reading commands do not connect
            url = pg.url(pg.create_database()) if pg else f"sqlite:///{root / 'center' / 'center.db'}"
            edit_toml(lab.center_config, {"store": {"url": url}})
            cfg = cfgmod.load(lab.center_config)
            center_kem = load_public(root / "center" / "center.pub").kem
            homes = [f"hem-y{i:03d}" for i in range(HOMES)]
            device = Identity.generate(homes[0])
            for home in homes:
                write_public(Identity.generate(home).public(), cfg.center.homes_dir / f"{home}.pub")
            staff = Identity.generate("anna")
            cfg.center.staff_dir.mkdir(mode=0o700, exist_ok=True)
            write_public(staff.public(), cfg.center.staff_dir / "anna.pub")

            now = time.time()

            def sealed(cls: str, kind: str) -> bytes:
                message = EventMessage(id=new_id(), home=homes[0], cls=cls, kind=kind, time=now, clock_synced=True,
                                       body={"room": "hall", "value": rand.randint(0, 999)})
                topic = topics.up(homes[0], cls)
                return envelope.seal(encode(message), topic, device.sign, center_kem)
            pool = {cls: [sealed(cls, kind) for _ in range(32)]
                    for cls, kind in (("alarm", "fall"), ("event", "door_closed"), ("telemetry", "temperature"))}

            store = EventStore(url)
            fast_build(store, pg, url, on=True)
            desk = case_desk(cfg, store)
            start = now - DAYS * 86400
            built = time.monotonic()
            counts = {"events": 0, "cases": 0}
            for day in range(DAYS):
                day0 = start + day * 86400
                plan = []
                for home in homes:
                    kinds = ([("alarm", rand.choice(ALARM_KINDS))] * poisson(rand, ALARMS)
                             + [("event", "door_closed")] * EVENTS + [("telemetry", "temperature")] * TELEMETRY)
                    plan += [(day0 + rand.random() * 86400, home, cls, kind) for cls, kind in kinds]
                batch: list[tuple[Received, EventMessage]] = []
                for at, home, cls, kind in sorted(plan):  # ids in time order, as devices make them
                    event_id = new_id()
                    batch.append((Received(event_id, home, cls, topics.up(home, cls), rand.choice(pool[cls]), at),
                                  EventMessage(id=event_id, home=home, cls=cls, kind=kind, time=at, clock_synced=True,
                                               body={})))
                by_id = {r.id: m for r, m in batch}

                def on_new(tx, new):
                    return desk.on_events(tx, [(by_id[r.id], r.received) for r in new])
                for i in range(0, len(batch), 500):
                    store.record([r for r, _ in batch[i : i + 500]], on_new)
                counts["events"] += len(batch)
                for case in desk.listing(open_only=True):
                    for action, after, args in (("accept", 60, {}), ("on_site", 900, {}),
                                                ("close", 1800, {"outcome": rand.choice(OUTCOMES)})):
                        at = case.opened + after
                        desk.act(SignedAction.make(staff, case.id, action, at, args), at)
                    counts["cases"] += 1
                if day % 30 == 29 or day == DAYS - 1:
                    say(f"  day {day + 1}: {counts['events']:,} events, {counts['cases']:,} cases "
                        f"({time.monotonic() - built:.0f} s)")
            fast_build(store, pg, url, on=False)
            store.close()

            size = store_size(root / "center", pg, url)
            result("year", "events in the store", counts["events"], "")
            result("year", "cases in the store", counts["cases"], "")
            result("year", "store size on disk", size / 2**20, "MiB", digits=0)
            result("year", "per home and year", size / HOMES / 2**20 * 365 / DAYS, "MiB", digits=1)

            def timed(*args: str) -> float:
                runs = []
                for _ in range(3):
                    started = time.monotonic()
                    subprocess.run([*TRYGG, "center", *args, "--config", str(lab.center_config)], env=ENV,
                                   check=True, stdout=subprocess.DEVNULL)
                    runs.append(time.monotonic() - started)
                return statistics.median(runs)
            result("year", "`trygg center cases --since 30d --json`", timed("cases", "--since", "30d", "--json") * 1000,
                   "ms", note="median of 3, whole process")
            result("year", "`trygg center cases --open --json`", timed("cases", "--open", "--json") * 1000, "ms",
                   note="median of 3, whole process")
            result("year", "`trygg center homes --json`", timed("homes", "--json") * 1000, "ms",
                   note="median of 3, whole process")
        finally:
            if pg:
                pg.stop()
    say()


def fast_build(store, pg, url: str, on: bool) -> None:
    """fsync off while the year is built (its speed is not a figure), back on for the figures."""
    if pg is None:
        store.db.query(f"PRAGMA synchronous={'OFF' if on else 'FULL'}")
        return
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        dbname = conn.info.dbname
        conn.execute(f"ALTER DATABASE {dbname} {'SET synchronous_commit = off' if on else 'RESET synchronous_commit'}")
    store.db.close()
    store.db = type(store.db)(url)  # the setting applies to new sessions


def store_size(center_dir: Path, pg, url: str) -> int:
    if pg is None:
        return sum(p.stat().st_size for p in center_dir.glob("center.db*"))
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]


if __name__ == "__main__":
    main()

"""Generated months of a municipality's homes in a real center store, with the truth kept.

For the morning report's tests and bench: N homes over M days, written into a real SQLite
store through the store's own tables (bulk inserts; the way the receiver writes them is tested
elsewhere). Every event the report may read is a real envelope: signed by that home's own device
key and sealed to the center key, exactly as a device sends it; cases carry their sealed part
through the center's Sealer; resident cards through Residents. Days older than `detail_days`
reuse one home's envelopes (the report never opens them; they give the store a year's size).

Per home and day: an activity summary (motion per local hour; after midnight, as the motion
driver sends it), two doses (taken, late or missed), bed exits and night door openings as
alarms (each opens a case with response times and an outcome), two device_health telemetry.
Some homes get one planted change in the last WEEK nights (more bed exits, restless nights, the
door at night, missed doses, a quiet day); noise homes get one odd night instead, which must
not flag. `Truth` says what was planted and what the report must count.
"""

import math
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from base.keys import Identity, load_private, load_public, write_public
from center import config as cfgmod
from center.atrest import Sealer
from center.provision import init_center
from center.residents import RESIDENT_CONTEXT, ResidentCard, Residents
from center.service import CASES_CONTEXT
from center.store import EventStore
from protocol import envelope, topics
from protocol.ids import new_id
from protocol.messages import EventMessage, encode

ZONE = ZoneInfo("Europe/Stockholm")
CHANGES = ("bed_exits", "activity", "doors", "doses", "quiet")
OUTCOMES = ("helped", "helped", "helped", "false_alarm", "injured", "not_home")
FIRST_NAMES = ("Greta", "Karl", "Ingrid", "Sven", "Maj", "Olle", "Britt", "Nils", "Elsa", "Gunnar")
LAST_NAMES = ("Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Larsson", "Olsson", "Persson")


@dataclass
class HomeTruth:
    home: str
    name: str | None
    planted: str | None  # one of CHANGES, or None (noise only)
    nights: dict = field(default_factory=dict)  # night date iso -> {"bed_exits", "doors", "activity"}
    doses: dict = field(default_factory=dict)  # local date iso -> {"taken", "late", "missed"}
    cases: list = field(default_factory=list)  # the last night's: {"opened", "accepted", "on_site", "closed", "outcome"}
    offline_s: float = 0.0  # last night


@dataclass
class Truth:
    config: Path
    morning: date
    homes: dict[str, HomeTruth]
    events: int = 0
    seconds: float = 0.0
    devices: dict = field(default_factory=dict)  # home -> its device Identity (in memory: a test may send more)


def poisson(rand: random.Random, mean: float) -> int:
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rand.random()
        if p <= limit:
            return k
        k += 1


def make_center(root: Path, pki) -> Path:
    """A center directory (config, keys, homes/) as `trygg center init` makes it; its config path."""
    cert, key = pki.client("center")
    return init_center("127.0.0.1:1883", pki.ca, cert, key, root / "center")["config"]


def _local(day: date, hour: float) -> float:
    """Epoch seconds of a local wall-clock time: the day at 00:00 plus hours (past 24: the next
    day). Wall-clock arithmetic, so 22:06 is 22:06 also on the night the clocks change."""
    return (datetime.combine(day, datetime.min.time(), ZONE) + timedelta(hours=hour)).timestamp()


def generate(config: Path, homes: int, days: int, morning: date, seed: int = 1, planted_share: float = 0.5,
             detail_days: int | None = None, named: bool = True) -> Truth:
    """Fill the config's store with `homes` homes over the `days` days before `morning`."""
    started = time.monotonic()
    rand = random.Random(seed)
    cfg = cfgmod.load(config)
    center_kem = load_public(cfg.center.key.with_suffix(".pub")).kem
    keys = [load_private(cfg.center.key)]
    store = EventStore(cfg.store_url)
    store.db.query("PRAGMA synchronous=OFF")  # the build's speed is not a figure
    case_sealer = Sealer(keys, CASES_CONTEXT)
    residents = Residents(store.db, Sealer(keys, RESIDENT_CONTEXT))
    first_day = morning - timedelta(days=days)
    detail_from = morning - timedelta(days=detail_days or days)
    truth = Truth(config, morning, {})
    ids = [f"hem-r{i:03d}" for i in range(homes)]
    for n, home in enumerate(ids):
        device = truth.devices[home] = Identity.generate(home)
        write_public(device.public(), cfg.center.homes_dir / f"{home}.pub")
        name = f"{FIRST_NAMES[n % 10]} {LAST_NAMES[(n // 10) % 8]}" if named and n % 7 else None
        if name:
            residents.set(home, ResidentCard(name=name), time.time())
        planted = CHANGES[n % len(CHANGES)] if rand.random() < planted_share else None
        ht = HomeTruth(home, name, planted)
        truth.homes[home] = ht
        rows, cases, pool = [], [], []

        def sealed(cls: str, kind: str, at: float, body: dict, received: float, home=home, device=device,
                   pool=pool, rows=rows, cases=cases) -> None:
            event_id = new_id(int(at * 1000))
            topic = topics.up(home, cls)
            if datetime.fromtimestamp(at, ZONE).date() < detail_from and pool:
                payload = rand.choice(pool)  # old filler: the size of a year, never opened by the report
            else:
                message = EventMessage(id=event_id, home=home, cls=cls, kind=kind,
                                       time=datetime.fromtimestamp(at, UTC), clock_synced=True, body=body)
                payload = envelope.seal(encode(message), topic, device.sign, center_kem)
                if cls == "telemetry" and len(pool) < 8:
                    pool.append(payload)
            rows.append((event_id, home, cls, topic, payload, received))
            if cls == "alarm":
                cases.append((at, kind, event_id))

        bed_rate = rand.uniform(0.3, 2.0)
        act_rate = rand.uniform(0.6, 2.0)  # motion per night hour
        door_rate = rand.uniform(0.0, 0.08)
        odd_night = morning - timedelta(days=rand.randint(1, 7)) if planted is None else None
        for i in range(days):
            day = first_day + timedelta(days=i)
            week = (morning - day).days <= 7  # the last seven nights start on these days
            bed, act, door = bed_rate, act_rate, door_rate
            if week and planted == "bed_exits":
                bed = bed_rate + 4
            if week and planted == "activity":
                act = act_rate * 2.5 + 2
            if week and planted == "doors":
                door = 0.95
            # the night starting this day: bed exits and door openings (alarms)
            exits = poisson(rand, bed) + (7 if day == odd_night else 0)
            doors = 1 if rand.random() < door else 0
            for _ in range(exits):
                at = _local(day, 22.1 + rand.random() * 8.8)
                sealed("alarm", "bed_exit", at, {"away_s": 900.0, "mode": "bed"}, at + 1)
            for _ in range(doors):
                at = _local(day, 23 + rand.random() * 7.5)
                sealed("alarm", "door_open", at, {"by": "inside", "night": True}, at + 1)
            ht.nights[day.isoformat()] = {"bed_exits": exits, "doors": doors}
            # motion per local hour of this day; its summary goes after midnight
            quiet_after = 14 if planted == "quiet" and day == morning - timedelta(days=1) else 24
            per_hour = []
            for h in range(24):
                rate = act if (h >= 22 or h < 7) else 8.0
                per_hour.append(poisson(rand, rate) if h < quiet_after else 0)
            if day == odd_night:
                per_hour[23] += 40  # one restless night: the median must not move
            sent = _local(day, 24) + 5
            sealed("telemetry", "activity_summary", sent - 5, {"date": day.isoformat(), "per_hour": per_hour,
                                                               "total": sum(per_hour)}, sent)
            ht.nights[day.isoformat()]["evening"] = sum(per_hour[22:])
            prev = (day - timedelta(days=1)).isoformat()
            if prev in ht.nights:
                ht.nights[prev]["activity"] = ht.nights[prev]["evening"] + sum(per_hour[:7])
            # two doses a day
            counts = {"taken": 0, "late": 0, "missed": 0}
            for j, dose in enumerate(("08:00", "20:00")):
                hour = 8 + 12 * j
                how = rand.choices(("taken", "late", "missed"), (0.9, 0.08, 0.02))[0]
                if planted == "doses" and (morning - day).days in (1, 2) and j == 0:
                    how = "missed"
                if how == "missed" and (morning - day).days <= 3 and planted != "doses":
                    how = "taken"  # noise never plants two missed doses in the last three days
                counts[how] += 1
                if how == "missed":
                    at = _local(day, hour + 1)
                    sealed("alarm", "dose_missed", at, {"dose": dose, "window_s": 3600, "dispensed": True}, at + 1)
                else:
                    at = _local(day, hour + (0.6 if how == "late" else 0.1))
                    sealed("event", "dose_taken", at, {"dose": dose, "after_s": 600, "late": how == "late"}, at + 1)
            ht.doses[day.isoformat()] = counts
            for h in (3, 15):
                at = _local(day, h)
                sealed("telemetry", "device_health", at, {"cpu_c": 45, "free_bytes": 10**9}, at + 1)
        truth.events += len(rows)
        store.db.query("BEGIN")
        try:
            for k in range(0, len(rows), 200):
                chunk = rows[k:k + 200]
                store.db.query("INSERT INTO events (id, home, class, topic, envelope, received) VALUES "
                               + ",".join(["(?,?,?,?,?,?)"] * len(chunk)), [v for r in chunk for v in r])
            _cases(store, case_sealer, rand, home, cases, ht, morning, _local(detail_from, 0))
            _offline(store, rand, home, ht, morning)
            store.db.query("COMMIT")
        except BaseException:
            store.db.query("ROLLBACK")
            raise
    store.db.query("PRAGMA synchronous=FULL")
    store.close()
    truth.seconds = time.monotonic() - started
    return truth


def _cases(store, sealer: Sealer, rand: random.Random, home: str, alarms: list, ht: HomeTruth, morning: date,
           detail_from: float) -> None:
    """One case per alarm, closed with response times and an outcome (the last night's in the truth).
    A case before detail_from reuses a sealed part (never opened by the morning report)."""
    night_from = _local(morning - timedelta(days=1), 22)
    night_to = _local(morning, 7)
    rows, links = [], []
    for at, kind, event_id in alarms:
        case_id = new_id(int(at * 1000))
        accepted = at + rand.uniform(20, 240)
        on_site = accepted + rand.uniform(300, 2400)
        closed = on_site + rand.uniform(300, 1500)
        outcome = rand.choice(OUTCOMES)
        body = {"kinds": [kind], "accepted_by": "anna", "on_site_by": "anna", "closed_by": "anna",
                "outcome": outcome, "note": None, "help_coming": None}
        old = at < detail_from and rows
        rows.append((case_id, home, "closed", at, accepted, on_site, closed, closed, 0, 0,
                     rows[-1][-1] if old else sealer.seal(f"case/{case_id}", body)))
        links.append((event_id, case_id, at))
        if night_from <= at < night_to:
            ht.cases.append({"opened": at, "kind": kind, "to_accept_s": round(accepted - at, 1),
                             "to_on_site_s": round(on_site - at, 1), "to_close_s": round(closed - at, 1),
                             "outcome": outcome})
    for k in range(0, len(rows), 200):
        chunk = rows[k:k + 200]
        store.db.query("INSERT INTO cases (id, home, state, opened, accepted, on_site, closed, updated, escalations, "
                       "overdue, sealed) VALUES " + ",".join(["(?,?,?,?,?,?,?,?,?,?,?)"] * len(chunk)),
                       [v for r in chunk for v in r])
    for k in range(0, len(links), 300):
        chunk = links[k:k + 300]
        store.db.query("INSERT INTO case_alarms (event_id, case_id, received) VALUES "
                       + ",".join(["(?,?,?)"] * len(chunk)), [v for r in chunk for v in r])


def _offline(store, rand: random.Random, home: str, ht: HomeTruth, morning: date) -> None:
    """Every fourth home drops offline for a while last night (presence feed rows, as the store writes)."""
    if int(home[-3:]) % 4:
        return
    start = _local(morning - timedelta(days=1), 23 + rand.random() * 4)
    seconds = rand.uniform(600, 7200)
    store.db.query("INSERT INTO feed (at, type, home, ref) VALUES (?,?,?,?), (?,?,?,?)",
                   (start, "presence", home, "offline", start + seconds, "presence", home, "online"))
    ht.offline_s = seconds

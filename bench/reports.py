#!/usr/bin/env python3
"""reports: how long the day nurse's morning report takes for a 300-home municipality.

A year of 300 homes goes into a SQLite store (tests/support/reportyear.py: bulk inserts into the
store's own tables; the last MORNING_DETAIL days are real envelopes signed by each home's key and
sealed to the center key, as the report opens them; older days are filler of the same size, so
the store has a year's bulk). Per home and day from the generator: motion summary, two doses,
bed exits and night doors as alarms with their cases. Then a realistic night (night()): the
store goes on to 07:00 on the report day, and the last MORNING_HEALTH_DAYS days get what a home
really sends besides: device_health telemetry every 15 min (drivers/health.py, every_s 900; the
uplink's 60 s heartbeats are retained status messages, not stored events), the dispenser's daily
dose_summary, a bed_return after each bed exit (the mat) and a door_closed after each door opened
(the lock). Envelopes of that filler are real (signed by the home's key, sealed to the center
key) and drawn from a small pool per home: opening one costs the same. Build with fsync off.
Figures, fsync back on, the clock set as the report runs every morning at 07:00:
  - first run ever: the morning before, 07:00; opens five weeks of envelopes and keeps each
    finished day's (week's) facts as a sealed digest;
  - the steady state: the next morning at 07:00, after yesterday's digests were kept: it opens
    the digests, all of yesterday (unfinished, so not kept, at the last run) and tonight to 07:00;
  - the same morning again, ten minutes later: the digests and today's part cover everything,
    so this is the floor (digests, the night's cases, the baselines), no envelope opened;
  - its HTML and its PDF (the homes needing attention drawn in full, the rest one line each);
  - `trygg center report morning --format pdf --out F`, whole process.
Target (issue 18): the morning report for 300 homes in < 5 s (the steady state).
Sizes: MORNING_HOMES (300), MORNING_DAYS (365), MORNING_DETAIL (45), MORNING_HEALTH_DAYS (42).
MORNING_PROFILE=1 prints a cProfile of the steady-state run.
"""

import cProfile
import os
import pstats
import random
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from _common import env_int, header, result, say, temp_root

HOMES = env_int("MORNING_HOMES", 300)
DAYS = env_int("MORNING_DAYS", 365)
DETAIL = env_int("MORNING_DETAIL", 45)
HEALTH_DAYS = env_int("MORNING_HEALTH_DAYS", 42)
TARGET_S = 5.0
MORNING = date(2026, 11, 30)
ZONE = ZoneInfo("Europe/Stockholm")
HEALTH_EVERY_S = 900  # drivers/health.py HealthConfig.every_s
POOL = 6  # real envelopes per home and kind, reused (opening one costs the same)


def at_seven(day: date) -> float:
    return datetime.combine(day, datetime.min.time().replace(hour=7), ZONE).timestamp()


def night(truth, cfg) -> int:
    """What the generator leaves out of a real home's days and nights, to 07:00 on the report day
    (see the module docstring); returns the rows added."""
    from base.keys import load_public
    from center.store import EventStore
    from protocol import envelope, topics
    from protocol.ids import new_id
    from protocol.messages import EventMessage, encode

    rand = random.Random(18)
    kem = load_public(cfg.center.key.with_suffix(".pub")).kem
    first = MORNING - timedelta(days=HEALTH_DAYS)
    start = datetime.combine(first, datetime.min.time(), ZONE).timestamp()
    end = at_seven(MORNING)
    store = EventStore(cfg.store_url)
    store.db.query("PRAGMA synchronous=OFF")
    added = 0
    try:
        for home, ht in truth.homes.items():
            device = truth.devices[home]

            def pool(cls, kind, body, home=home, device=device):
                topic = topics.up(home, cls)
                out = []
                for _ in range(POOL):
                    m = EventMessage(id=new_id(), home=home, cls=cls, kind=kind, time=datetime.now(UTC),
                                     clock_synced=True, body=body)
                    out.append(envelope.seal(encode(m), topic, device.sign, kem))
                return topic, out
            health = pool("telemetry", "device_health", {"health": "pi", "cpu_temp_c": 48.5, "disk_free_mb": 20480,
                                                         "disk_free_pct": 71.3, "under_voltage": False,
                                                         "clock_synced": True})
            summary = pool("telemetry", "dose_summary", {"dispenser": "dosett", "date": "2026-11-01", "taken": 2,
                                                         "late": 0, "missed": 0, "faults": 0, "power_interruptions": 0,
                                                         "doses_left": 20, "days_left": 10.0})
            back = pool("event", "bed_return", {"mat": "bed", "away_s": 420.0})
            closed = pool("event", "door_closed", {"lock": "front-door", "open_s": 35.0})
            rows = []

            def add(kind_pool, at, rows=rows, home=home):
                topic, payloads = kind_pool
                rows.append((new_id(int(at * 1000)), home, topic.rsplit("/", 1)[1], topic, rand.choice(payloads),
                             at + rand.uniform(0.05, 0.5)))
            t = start
            while t < end:  # the generator sends two a day itself, at 03:00 and 15:00
                local = datetime.fromtimestamp(t, ZONE)
                if not (local.minute == 0 and local.hour in (3, 15)):
                    add(health, t + rand.uniform(0, 60))
                t += HEALTH_EVERY_S
            for i in range(HEALTH_DAYS):
                day = first + timedelta(days=i)
                midnight = datetime.combine(day + timedelta(days=1), datetime.min.time(), ZONE).timestamp()
                if midnight < end:
                    add(summary, midnight + 2)
                n = ht.nights.get(day.isoformat(), {})
                night_from = datetime.combine(day, datetime.min.time().replace(hour=22), ZONE).timestamp()
                for _ in range(n.get("bed_exits", 0)):
                    add(back, night_from + rand.uniform(600, 9 * 3600))
                for _ in range(n.get("doors", 0)):
                    add(closed, night_from + rand.uniform(3600, 9 * 3600))
            store.db.query("BEGIN")
            for k in range(0, len(rows), 200):
                chunk = rows[k:k + 200]
                store.db.query("INSERT INTO events (id, home, class, topic, envelope, received) VALUES "
                               + ",".join(["(?,?,?,?,?,?)"] * len(chunk)), [v for r in chunk for v in r])
            store.db.query("COMMIT")
            added += len(rows)
        store.db.query("PRAGMA synchronous=FULL")
    finally:
        store.close()
    return added


def timed(run, cfg, morning: date, settings, now: float, profile: bool = False):
    from center.reports.morning import report

    profiler = cProfile.Profile() if profile else None
    started, cpu = time.monotonic(), time.process_time()
    if profiler:
        profiler.enable()
    data = report(cfg, morning, None, settings, now)
    if profiler:
        profiler.disable()
    took, cpu = time.monotonic() - started, time.process_time() - cpu
    opened = data["opened"]
    steady = run.startswith("steady")
    result("reports", f"morning report data, {HOMES} homes, {run}", took, "s",
           target=f"< {TARGET_S:.0f} s" if steady else "", ok=took < TARGET_S if steady else None, digits=2,
           note=f"{opened['envelopes']:,} envelopes, {opened.get('verified', opened['envelopes']):,} of them verified, "
                f"{opened['digests']:,} digests; CPU {cpu:.2f} s, load average {os.getloadavg()[0]:.1f}")
    if profiler:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    return data


def main() -> None:
    from base.labpki import make_lab_pki
    from center import config as cfgmod
    from center.reportcli import render
    from center.reports.morning import Settings
    from tests.support.lab import ENV, TRYGG
    from tests.support.reportyear import generate, make_center

    header(f"reports: the morning report for {HOMES} homes ({DAYS} days in the store, the last {DETAIL} real; "
           f"health telemetry every 15 min for the last {HEALTH_DAYS})")
    with temp_root("morning") as root:
        pki = make_lab_pki(root / "pki", ["center"])
        truth = generate(make_center(root, pki), homes=HOMES, days=DAYS, morning=MORNING, seed=2026,
                         planted_share=0.3, detail_days=DETAIL)
        cfg = cfgmod.load(truth.config)
        started = time.monotonic()
        added = night(truth, cfg)
        built = truth.seconds + time.monotonic() - started
        size = sum(p.stat().st_size for p in (root / "center").glob("center.db*"))
        result("reports", "events in the store", truth.events + added, "", note=f"{added:,} of them the real night")
        result("reports", "store size on disk", size / 2**20, "MiB", note=f"built in {built:.0f} s, fsync off")
        settings = Settings(outcomes=dict(cfg.cases.outcomes))
        yesterday = MORNING - timedelta(days=1)
        timed("first run ever (07:00 the day before)", cfg, yesterday, settings, at_seven(yesterday))
        data = timed("steady state (next morning, 07:00)", cfg, MORNING, settings, at_seven(MORNING),
                     profile=os.environ.get("MORNING_PROFILE") == "1")
        timed("the same morning again", cfg, MORNING, settings, at_seven(MORNING) + 600)
        say(f"  ({data['needs_attention']} of {HOMES} homes need attention)")
        started = time.monotonic()
        html = render(data, "html")
        result("reports", "its HTML", time.monotonic() - started, "s", digits=2, note=f"{len(html) / 2**20:.1f} MiB")
        started = time.monotonic()
        pdf = render(data, "pdf")
        result("reports", "its PDF", time.monotonic() - started, "s", digits=2, note=f"{len(pdf) / 2**10:.0f} KiB")
        out = root / "morgon.pdf"
        started = time.monotonic()
        subprocess.run([*TRYGG, "center", "report", "morning", "--date", MORNING.isoformat(), "--format", "pdf",
                        "--out", str(out), "--config", str(truth.config)], env=ENV, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        result("reports", "`trygg center report morning --format pdf`", time.monotonic() - started, "s", digits=2,
               note="whole process, digests kept (the wall clock is later: that morning's day is finished)")
    say()


if __name__ == "__main__":
    sys.exit(main())

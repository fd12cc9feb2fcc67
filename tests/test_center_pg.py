"""Several receivers as one on PostgreSQL, with real processes: homes (`trygg run`) send a burst
of 3,000 events with alarms among them to two receiving services sharing the homes' messages
(an MQTT shared subscription) and one store. One service is killed with SIGKILL mid-burst; in
another run PostgreSQL itself is stopped mid-burst and started again. Afterwards: every event
recorded once, every alarm in a case, each id shown once by a view, and the homes' outboxes
empty (acknowledged only what was recorded: anything acknowledged but not recorded would be
missing from the store, since the home deletes it on the ack)."""

import os
import shutil
import signal
import subprocess
import time

import psycopg

from tests.support.lab import ENV, TRYGG, edit_toml, wait_for

HOMES, EVENTS, ALARMS = 3, 990, 10  # 3,000 in all


def two_receivers(lab, url: str):
    edit_toml(lab.center_config, {"store": {"url": url}, "center": {"shared_group": f"g{os.urandom(4).hex()}"}})
    second = lab.center_config.with_name("center-b.toml")
    shutil.copy(lab.center_config, second)
    edit_toml(second, {"center": {"name": f"center-b-{os.urandom(3).hex()}"}})
    return lab.watch(), lab.watch(second)


def burst(lab) -> tuple[list, list[str], list[str]]:
    homes = [lab.home(f"hem-pg-{i}", outbox={"resend_after_s": 2}).start() for i in range(HOMES)]
    alarms, events = [], []
    for home in homes:
        alarms += home.simulate("alarm", kind="fall", count=ALARMS)
        events += home.simulate("event", count=EVENTS)
    return homes, alarms, events


def recorded(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]


def check_all_once(url: str, homes, alarms: list[str], events: list[str], views) -> None:
    wait_for(lambda: all(h.depth() == 0 for h in homes), 180, "every home's outbox to drain")
    with psycopg.connect(url) as conn:
        ids = {r[0] for r in conn.execute("SELECT id FROM events")}
        fed = conn.execute("SELECT ref, COUNT(*) FROM feed WHERE type = 'event' GROUP BY ref HAVING COUNT(*) > 1")
        assert fed.fetchall() == [], "an event fed twice"
        in_cases = {r[0] for r in conn.execute("SELECT event_id FROM case_alarms")}
        open_cases = conn.execute("SELECT home, COUNT(*) FROM cases GROUP BY home").fetchall()
    assert set(alarms) | set(events) <= ids, f"{len(set(alarms) | set(events) - ids)} lost"
    assert set(alarms) <= in_cases
    assert sorted(open_cases) == sorted((h.id, 1) for h in homes)  # ten falls per home: one case each
    for view in views:
        shown = [e["id"] for e in view.events if e.get("type") == "event"]
        assert len(shown) == len(set(shown)), "an id shown twice by one view"


def test_two_receivers_one_killed_mid_burst_lose_nothing_and_show_nothing_twice(lab, pg_url):
    first, second = two_receivers(lab, pg_url)
    homes, alarms, events = burst(lab)
    wait_for(lambda: recorded(pg_url) >= 300, 60, "the burst to be under way")
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    check_all_once(pg_url, homes, alarms, events, [second])
    shown = {e["id"] for e in second.events if e.get("type") == "event"}
    assert set(alarms) <= shown  # the surviving receiver's view shows every alarm, whoever recorded it


def test_postgresql_stopped_mid_burst_and_started_again_loses_nothing(lab, own_pg_server):
    url = own_pg_server.url(own_pg_server.create_database())
    first, second = two_receivers(lab, url)
    homes, alarms, events = burst(lab)
    wait_for(lambda: recorded(url) >= 300, 60, "the burst to be under way")
    own_pg_server.stop(mode="immediate")  # no clean shutdown: what is committed is on disk
    for home in homes:  # sent while the store is away: received, and not acknowledged
        alarms += home.simulate("alarm", kind="help")
        events += home.simulate("event", count=50)
    time.sleep(5)
    assert all(h.depth() >= 51 for h in homes), "the homes keep what was not acknowledged"
    own_pg_server.start()
    check_all_once(url, homes, alarms, events, [])
    assert first.proc.poll() is None and second.proc.poll() is None  # they waited, and went on


def test_postgresql_unreachable_at_start_the_service_says_so_retries_and_then_receives(lab, own_pg_server):
    url = own_pg_server.url(own_pg_server.create_database())
    edit_toml(lab.center_config, {"store": {"url": url}})
    own_pg_server.stop()
    home = lab.home("hem-pg-late", outbox={"resend_after_s": 2}).start()
    sent = home.simulate("alarm", kind="fall") + home.simulate("event", count=20)
    log_path = lab.root / "late-service.log"
    service = subprocess.Popen([*TRYGG, "center", "run", "--config", str(lab.center_config)],
                               stdin=subprocess.DEVNULL, stdout=open(log_path, "w"), stderr=subprocess.STDOUT, env=ENV)
    try:
        wait_for(lambda: "waiting for the store" in log_path.read_text(), 30, "the service to say the store is away")
        time.sleep(3)
        assert service.poll() is None, "it keeps retrying, it does not exit"
        assert home.depth() >= len(sent), "nothing acknowledged while nothing can be recorded"
        own_pg_server.start()
        wait_for(lambda: home.depth() == 0, 90, "the home's outbox to drain once the store is back")
        with psycopg.connect(url) as conn:
            ids = {r[0] for r in conn.execute("SELECT id FROM events")}
            cases = conn.execute("SELECT COUNT(*) FROM cases WHERE home = %s", (home.id,)).fetchone()[0]
        assert set(sent) <= ids and cases == 1
        assert "Traceback" not in log_path.read_text()
    finally:
        service.terminate()
        service.wait(30)

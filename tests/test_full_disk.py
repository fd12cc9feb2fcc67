"""A full SD card must not cost an alarm: real daemons with their state on a small tmpfs.

The card is filled from outside Trygg (as logs or a camera burst would), with the link up and
with it cut. Needs root to mount the tmpfs (CI runs as root).
"""

from pathlib import Path

import pytest

from tests.support.cards import fill
from tests.support.lab import trygg, wait_for

pytestmark = pytest.mark.slow
CARD = "2m"
SMALL = {"reserve_bytes": 256 * 1024, "min_free_bytes": 192 * 1024}


@pytest.fixture
def card(tmpfs):
    return tmpfs(CARD)


def home_on(lab, card: Path, home_id: str, port: int | None = None, **outbox):
    """A home whose outbox and trust database are on the card; heartbeats every 2 s."""
    return lab.home(home_id, port=port, outbox={"path": str(card / "outbox.db"), **SMALL, **outbox},
                    trust={"path": str(card / "trust.db")}, uplink={"heartbeat_s": 2})


def test_alarms_reach_the_center_from_a_full_card_and_the_center_is_told(lab, card):
    watch = lab.watch()
    home = home_on(lab, card, "hem-fullcard").start()
    watch.wait_event(lambda e: e["home"] == home.id and e["kind"] == "device_health", timeout=20)
    assert (card / "outbox.db.reserve").stat().st_size == SMALL["reserve_bytes"]
    fill(card)

    night = [home.simulate("alarm", kind=k)[0] for k in ("dose_missed", "bed_exit", "fall", "help", "door_open")]
    watch.wait_ids(night, timeout=20)  # 5 of 5 alarms of a night reached the center
    fault = watch.wait_event(lambda e: e["home"] == home.id and e["kind"] == "fault"
                             and e["body"].get("component") == "storage", timeout=15)
    assert "full" in fault["body"]["detail"]
    status = home.status()
    assert status["storage"]["state"] == "failing"
    assert status["storage"]["free_bytes"] is not None
    watch.wait_other(lambda o: o.get("type") == "storage" and o["home"] == home.id and o["state"] == "failing",
                     timeout=15)

    # Telemetry that cannot be kept is counted and reported, and a driver-less spin never starts.
    trygg("simulate", "telemetry", "--kind", "device_health", "--count", "20", "--config", home.config, check=False)
    trygg("simulate", "event", "--kind", "door_open", "--config", home.config, check=False)

    # Room again: the reserve is made whole, the center is told the card is well.
    (card / "filler.log").unlink()
    watch.wait_event(lambda e: e["home"] == home.id and e["kind"] == "fault_cleared"
                     and e["body"].get("component") == "storage", timeout=60)
    wait_for(lambda: (card / "outbox.db.reserve").exists(), 10, "the reserve to be made again")
    lost = watch.wait_event(lambda e: e["home"] == home.id and e["kind"] == "data_lost", timeout=60)
    assert sum(lost["body"]["dropped"].values()) + sum(lost["body"].get("not_stored", {}).values()) > 0
    assert home.responds()


def test_an_alarm_not_stored_is_held_in_memory_until_the_center_has_it(lab, card):
    """No reserve and a full card: the alarm is accepted but not stored, sent as soon as the link
    is up, and kept in memory until acknowledged (shown in status)."""
    from tests.support.netproxy import TcpProxy

    with TcpProxy("127.0.0.1", int(lab.broker.rsplit(":", 1)[1])) as proxy:
        proxy.start()
        watch = lab.watch()
        home = home_on(lab, card, "hem-memory", port=proxy.port, reserve_bytes=0).start()
        wait_for(lambda: home.status()["link"] == "connected", 15, "link up")
        proxy.cut()
        wait_for(lambda: home.status()["link"] != "connected", 15, "the daemon to notice the cut")
        fill(card)
        out = trygg("simulate", "alarm", "--kind", "fall", "--config", home.config)
        [alarm] = out.stdout.split()
        assert "NOT STORED" in out.stderr
        assert home.status()["held_in_memory"] >= 1
        proxy.restore()
        watch.wait_ids([alarm], timeout=30)
        wait_for(lambda: home.status()["held_in_memory"] == 0, 30, "the held alarm to be acknowledged")


def test_a_daemon_restarted_on_a_full_card_starts_and_its_alarms_get_out(lab, card):
    watch = lab.watch()
    home = home_on(lab, card, "hem-restart").start()
    watch.wait_event(lambda e: e["home"] == home.id and e["kind"] == "device_health", timeout=20)
    assert home.stop() == 0
    fill(card)  # while it was down (a crash loop's logs, say)
    home.start()  # trust.db and the outbox need room even to open: the reserve makes it
    [alarm] = home.simulate("alarm", kind="help")
    watch.wait_ids([alarm], timeout=20)
    watch.wait_event(lambda e: e["home"] == home.id and e["kind"] == "fault"
                     and e["body"].get("component") == "storage", timeout=15)


def test_an_alarm_not_stored_with_the_link_up_is_sent_at_once(lab, card):
    """No reserve, a full card, the link up all along: the alarm goes out from memory on this
    connection, not only after the next reconnect."""
    watch = lab.watch()
    home = home_on(lab, card, "hem-liveheld", reserve_bytes=0).start()
    watch.wait_event(lambda e: e["home"] == home.id and e["kind"] == "device_health", timeout=20)
    fill(card)
    out = trygg("simulate", "alarm", "--kind", "help", "--config", home.config)
    [alarm] = out.stdout.split()
    assert "NOT STORED" in out.stderr
    watch.wait_ids([alarm], timeout=15)
    wait_for(lambda: home.status()["held_in_memory"] == 0, 30, "the held alarm to be acknowledged")
    assert home.status()["reconnects"] == 0


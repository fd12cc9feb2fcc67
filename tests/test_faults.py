"""Fault injection with real processes on loopback: broker restarts and kill -9, daemon kill -9,
cut and slowed links, a full outbox, a corrupt database, hostile messages. Nothing committed
may be lost; the receiver shows each id once."""

import os
import random
import time

import paho.mqtt.client as mqtt
import pytest

from base.keys import Identity, load_private, load_public
from protocol import envelope, topics
from protocol.ids import new_id
from protocol.messages import AckMessage, encode
from tests.support.lab import edit_toml, Lab, wait_for
from tests.support.netproxy import TcpProxy

FAST = {"outbox": {"resend_after_s": 1.0}, "uplink": {"backoff_min_s": 0.1, "backoff_max_s": 0.5}}


def assert_each_once(watch, ids):
    shown = watch.ids()
    assert len(shown) == len(set(shown)), "the receiver showed an id twice"
    assert set(ids) <= set(shown)


@pytest.fixture
def own_lab(tmp_path, pki, own_broker):
    lab = Lab(tmp_path, pki, own_broker.port)
    yield lab
    lab.close()


def test_broker_stopped_for_a_while_then_restarted_loses_nothing(own_lab, own_broker):
    watch = own_lab.watch()
    home = own_lab.home("hem-restart", **FAST).start()
    ids = home.simulate("alarm", kind="fall")
    watch.wait_ids(ids)
    own_broker.stop()
    ids += home.simulate("alarm", kind="help") + home.simulate("event", count=50) + home.simulate("telemetry", count=50)
    time.sleep(2)
    own_broker.start()
    watch.wait_ids(ids, timeout=30)
    assert_each_once(watch, ids)
    wait_for(lambda: home.depth() == 0, 15, "the outbox to empty")


def test_broker_killed_after_puback_and_receiver_down_loses_nothing(own_lab, own_broker):
    home = own_lab.home("hem-crash", **FAST).start()
    # No receiver: the broker PUBACKs and has nobody to deliver to; then it dies without saving.
    ids = home.simulate("alarm", kind="fall", count=5) + home.simulate("event", count=20)
    wait_for(lambda: home.status()["last_puback"] is not None, 10, "PUBACKs from the broker")
    own_broker.kill()
    time.sleep(1)
    own_broker.start()
    classes = home.status()["outbox"]["classes"]  # events also hold the daemon's own audit entries
    assert classes["alarm"]["depth"] == 5 and classes["event"]["depth"] >= 20, \
        "PUBACK must not delete what the center has not acknowledged"
    time.sleep(2)  # the receiver stays down a while longer
    watch = own_lab.watch()
    watch.wait_ids(ids, timeout=30)
    assert_each_once(watch, ids)
    wait_for(lambda: home.depth() == 0, 15, "the outbox to empty")


def test_daemon_kill9_while_draining_repeatedly_loses_nothing(lab, broker):
    with TcpProxy("127.0.0.1", broker.port) as proxy:
        proxy.start()
        home = lab.home("hem-kill9", port=proxy.port, **FAST).start()
        proxy.cut()
        ids = home.simulate("event", count=1500) + home.simulate("alarm", count=20)
        watch = lab.watch()
        time.sleep(1)
        proxy.restore()
        rng = random.Random(7)
        for _ in range(4):
            time.sleep(rng.uniform(0.2, 0.8))  # somewhere in the middle of draining
            home.kill9()
            home.start()
        watch.wait_ids(ids, timeout=90)
        wait_for(lambda: home.depth() == 0, 30, "the outbox to empty")  # inside: the proxy is the home's link
    assert_each_once(watch, ids)


def test_slow_and_cut_link_delivers_everything(lab, broker):
    with TcpProxy("127.0.0.1", broker.port) as proxy:
        proxy.start()
        proxy.set_delay(0.05)
        watch = lab.watch()
        home = lab.home("hem-slow", port=proxy.port, **FAST).start()
        ids = home.simulate("telemetry", count=300) + home.simulate("alarm", kind="fall")
        time.sleep(0.3)
        proxy.cut()  # the mobile link drops mid-stream
        time.sleep(1)
        ids += home.simulate("event", count=50)
        proxy.restore()
        watch.wait_ids(ids, timeout=60)
    assert_each_once(watch, ids)


def test_full_outbox_drops_telemetry_first_and_reports_data_lost(lab, broker):
    with TcpProxy("127.0.0.1", broker.port) as proxy:
        proxy.start()
        home = lab.home("hem-full", port=proxy.port, outbox={"max_bytes": 65536, "sweep_s": 0.5}, **{
            "uplink": FAST["uplink"]}).start()
        proxy.cut()
        alarms = home.simulate("alarm", kind="fall", count=3)
        home.simulate("telemetry", count=400)  # far more than 64 KiB of sealed rows
        events = home.simulate("event", count=5)
        status = home.status()
        assert status["outbox"]["dropped"]["telemetry"] > 0
        assert status["outbox"]["dropped"]["alarm"] == 0
        assert status["outbox"]["classes"]["alarm"]["depth"] == 3
        watch = lab.watch()
        time.sleep(1)
        proxy.restore()
        watch.wait_ids(alarms + events, timeout=30)

        def reported():  # losses may be reported in several data_lost events, each counted once
            lost = [e for e in watch.events if e["kind"] == "data_lost"]
            dropped = home.status()["outbox"]["dropped"]["telemetry"]  # still counting while data_lost evicts
            return lost if sum(e["body"]["dropped"]["telemetry"] for e in lost) == dropped else None

        lost = wait_for(reported, 20, "data_lost events reporting every dropped telemetry row", interval=0.5)
    assert {e["class"] for e in lost} == {"event"}
    assert sum(e["body"]["dropped"]["alarm"] for e in lost) == 0


def test_corrupt_outbox_is_moved_aside_and_reported_as_fault(lab):
    home = lab.home("hem-corrupt")
    db = home.dir / "outbox.db"
    db.write_bytes(b"SQLite format 3\x00" + os.urandom(8192))
    db.chmod(0o600)  # as the daemon made it: only the content is damaged
    watch = lab.watch()
    home.start()
    fault = wait_for(lambda: [e for e in watch.events if e["kind"] == "fault"], 15, "a fault event")
    assert "corrupt" in fault[0]["body"]["detail"]
    assert list(home.dir.glob("outbox.db.corrupt-*"))
    [alarm] = home.simulate("alarm")
    watch.wait_ids([alarm])


def _center_client(lab, broker):
    cert, key = lab.pki.client("center")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"attacker-{new_id()[-6:]}", protocol=mqtt.MQTTv5)
    client.tls_set(ca_certs=str(lab.pki.ca), certfile=str(cert), keyfile=str(key))
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    return client


def test_receiver_reports_and_skips_garbage_tampered_and_foreign_messages(lab, broker):
    """Each is rejected and counted; staff views get one summary per home per period, the
    service's log the first reason at once: never a line per message."""
    edit_toml(lab.center_config, {"center": {"rejected_summary_s": 2}})
    watch = lab.watch()
    home = lab.home("hem-hostile").start()
    [first] = home.simulate("alarm")
    watch.wait_ids([first])
    device = load_private(home.dir / "device.key")
    center = load_public(home.dir / "center.pub")
    foreign = Identity.generate("hem-hostile")
    body = encode(__import__("protocol.messages", fromlist=["EventMessage"]).EventMessage(
        id=new_id(), home="hem-hostile", cls="alarm", kind="fall",
        time=__import__("datetime").datetime.now(__import__("datetime").timezone.utc), clock_synced=True))
    up_alarm, up_event = topics.up("hem-hostile", "alarm"), topics.up("hem-hostile", "event")
    good = envelope.seal(body, up_alarm, device.sign, center.kem)
    tampered = bytearray(good)
    tampered[-5] ^= 0x01
    hostile = [
        (up_alarm, b""), (up_alarm, b"\x00" * 3), (up_alarm, os.urandom(600)), (up_alarm, good[:40]),
        (up_alarm, bytes(tampered)),
        (up_event, good),  # moved to another topic
        (up_alarm, envelope.seal(body, up_alarm, foreign.sign, center.kem)),  # not the home's key
        (topics.status("hem-hostile"), b"online"),
        (up_alarm, os.urandom(2 * 1024 * 1024)),  # oversized
    ]
    attacker = _center_client(lab, broker)
    try:
        for topic, payload in hostile:
            attacker.publish(topic, payload, qos=1).wait_for_publish(5)
        def rejected() -> int:
            return sum(o["count"] for o in watch.other if o.get("type") == "rejected" and o.get("home") == "hem-hostile")
        wait_for(lambda: rejected() >= len(hostile) - 1, 15, "every hostile message counted in a summary")
        assert len([o for o in watch.other if o.get("type") == "rejected" and o.get("home") == "hem-hostile"]) <= 3
        assert watch.log.with_suffix(".service.log").read_text().count("rejected a message from hem-hostile") <= 3
        # the real alarm still arrives afterwards, and the receiver is still alive
        [after] = home.simulate("alarm", kind="help")
        watch.wait_ids([after])
        assert watch.proc.poll() is None
        own = ("audit", "device_health", "lookin_plan")  # what the device itself sends at start
        assert not [e for e in watch.events if e["id"] not in (first, after) and e["home"] == "hem-hostile"
                    and e["kind"] not in own]
    finally:
        attacker.loop_stop()
        attacker.disconnect()


def test_forged_ack_does_not_silence_an_alarm(lab, broker):
    home = lab.home("hem-forged").start()  # no receiver: the alarm waits for the real center
    [alarm] = home.simulate("alarm", kind="fall")
    device_pub = load_public(home.dir / "device.pub")
    attacker_key = Identity.generate("center")
    ack = encode(AckMessage(home="hem-forged", ids=[alarm], time=__import__("datetime").datetime.now(
        __import__("datetime").timezone.utc)))
    topic = topics.ack("hem-forged")
    attacker = _center_client(lab, broker)
    try:
        attacker.publish(topic, envelope.seal(ack, topic, attacker_key.sign, device_pub.kem), qos=1).wait_for_publish(5)
        attacker.publish(topic, b"garbage", qos=1).wait_for_publish(5)
    finally:
        attacker.loop_stop()
        attacker.disconnect()
    time.sleep(1)
    assert home.status()["unacked_alarms"]["depth"] == 1
    watch = lab.watch()
    watch.wait_ids([alarm], timeout=40)  # the real center's ack, after a re-send
    wait_for(lambda: home.depth() == 0, 40, "the real ack to clear the alarm")


def test_center_shows_a_home_going_silent_and_offline(lab, broker):
    with TcpProxy("127.0.0.1", broker.port) as proxy:
        proxy.start()
        watch = lab.watch()
        home = lab.home("hem-presence", port=proxy.port, uplink={"heartbeat_s": 1}).start()
        watch.wait_other(lambda o: o.get("home") == "hem-presence" and o.get("state") == "online")
        proxy.blackhole()  # the link dies without TCP noticing: only missing heartbeats tell
        watch.wait_other(lambda o: o.get("home") == "hem-presence" and o.get("state") == "silent", timeout=10)
        proxy.restore()
    home.stop()
    watch.wait_other(lambda o: o.get("home") == "hem-presence" and o.get("state") == "offline", timeout=20)


def test_sigterm_stops_cleanly_and_says_offline(lab):
    watch = lab.watch()
    home = lab.home("hem-term").start()
    watch.wait_other(lambda o: o.get("home") == "hem-term" and o.get("state") == "online")
    assert home.stop() == 0
    watch.wait_other(lambda o: o.get("home") == "hem-term" and o.get("state") == "offline", timeout=5)
    assert not (home.dir / "trygg.sock").exists()


def test_replayed_heartbeats_cannot_revive_a_dead_home_after_a_receiver_restart(lab, broker):
    captured: list[bytes] = []
    spy = _center_client(lab, broker)
    spy.on_message = lambda c, u, m: captured.append(m.payload) if not m.retain else None
    spy.subscribe(topics.status("hem-replay"), qos=1)
    try:
        watch = lab.watch()
        home = lab.home("hem-replay", uplink={"heartbeat_s": 1}).start()
        wait_for(lambda: len(captured) >= 2, 10, "heartbeats to record")
        home.kill9()  # the power is cut: the broker publishes the last will
        watch.wait_other(lambda o: o.get("home") == "hem-replay" and o.get("state") == "offline", timeout=20)
        watch.stop()
        watch = lab.watch()  # the receiver restarts and forgets nothing it must not
        spy.unsubscribe(topics.status("hem-replay"))
        for payload in list(captured):  # an attacker replays what it recorded, as live messages
            spy.publish(topics.status("hem-replay"), payload, qos=1).wait_for_publish(5)
        time.sleep(2)
        assert not [o for o in watch.other if o.get("home") == "hem-replay" and o.get("state") == "online"]
    finally:
        spy.loop_stop()
        spy.disconnect()

"""End to end through the real CLI, a real Mosquitto with mutual TLS, and real SQLite files."""

import json
import time
from datetime import datetime

from tests.support.lab import wait_for

REQUIRED = {"id", "home", "class", "kind", "time", "received", "clock_synced", "body"}


def test_alarm_reaches_night_staff_sealed_and_acknowledged(lab):
    watch = lab.watch()
    home = lab.home("hem-e2e").start()
    [alarm_id] = home.simulate("alarm", kind="fall")
    watch.wait_ids([alarm_id], timeout=15)
    [event] = [e for e in watch.events if e["id"] == alarm_id]
    assert REQUIRED <= event.keys()
    assert (event["home"], event["class"], event["kind"]) == ("hem-e2e", "alarm", "fall")
    assert datetime.fromisoformat(event["received"]) >= datetime.fromisoformat(event["time"])
    # delivered = acknowledged by the center, then deleted from the outbox
    wait_for(lambda: home.depth() == 0, 10, "the acknowledged alarm to leave the outbox")
    status = home.status()
    assert status["link"] == "connected" and status["last_ack"] is not None


def test_nothing_readable_on_disk_or_at_the_broker(lab, broker):
    """Seal before store: the outbox file and the broker's traffic never hold the plaintext."""
    import paho.mqtt.client as mqtt

    seen: list[bytes] = []
    cert, key = lab.pki.client("center")
    spy = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="spy", protocol=mqtt.MQTTv5)
    spy.tls_set(ca_certs=str(lab.pki.ca), certfile=str(cert), keyfile=str(key))
    spy.on_message = lambda c, u, m: seen.append(m.payload)
    spy.connect("127.0.0.1", broker.port)
    spy.subscribe("trygg/v1/hem-disk/up/#", qos=1)
    spy.loop_start()
    try:
        home = lab.home("hem-disk").start()  # no receiver: the event stays in the outbox
        home.simulate("alarm", kind="dose_missed")
        wait_for(lambda: seen, 10, "the broker to relay the sealed alarm")
    finally:
        spy.loop_stop()
        spy.disconnect()
    home.stop()
    on_disk = b"".join(p.read_bytes() for p in home.dir.glob("outbox.db*"))
    assert b"hem-disk" in on_disk or on_disk  # the file exists and has content
    for blob in [on_disk, *seen]:
        assert b"dose_missed" not in blob
        assert b"simulated" not in blob


def test_alarm_overtakes_a_large_backlog_after_an_outage(lab, pki, broker):
    from tests.support.netproxy import TcpProxy

    with TcpProxy("127.0.0.1", broker.port) as proxy:
        proxy.start()
        watch = lab.watch()  # the center's session exists before the home sends, as in service
        home = lab.home("hem-backlog", port=proxy.port).start()
        wait_for(lambda: home.status()["link"] == "connected", 10, "link up")
        for kind in ("audit", "device_health"):  # what the home sends at start, received and acked before the cut
            watch.wait_event(lambda e, kind=kind: e["home"] == home.id and e["kind"] == kind)
        wait_for(lambda: home.depth() == 0, 10, "the start-up messages to be acked")
        proxy.cut()
        wait_for(lambda: home.status()["link"] != "connected", 10, "the daemon to notice the cut")
        backlog = home.simulate("telemetry", count=1500) + home.simulate("event", count=300)
        [alarm] = home.simulate("alarm", kind="fall")
        proxy.restore()
        watch.wait_ids([alarm, *backlog], timeout=60)
        # Inside the proxy's block: leaving it closes the home's link, and the last acknowledgements
        # still on their way would never arrive (that, not a re-send interval, made this wait time out).
        wait_for(lambda: home.depth() == 0, 20, "the outbox to empty")
    waiting = {alarm, *backlog}
    order = [i for i in watch.ids() if i in waiting]  # not what the home sent before the cut
    # The alarm has its own lane at the center (its own broker session and thread), so a batch of
    # the backlog the other lane took at the same moment may be committed a moment before it; what
    # matters is that the alarm is not behind the backlog (its time is bench/cases' and stall's).
    assert order.index(alarm) < len(order) // 10, f"alarm arrived at position {order.index(alarm)} of {len(order)}"
    assert len(order) == len(set(order)), "an id was shown twice"


def test_status_json_reports_what_technicians_need(lab):
    home = lab.home("hem-status").start()
    status = home.status()
    for key in ("link", "uptime_s", "outbox", "last_puback", "unacked_alarms", "clock_synced"):
        assert key in status
    for cls in ("alarm", "event", "telemetry"):
        assert {"depth", "oldest_age_s"} <= status["outbox"]["classes"][cls].keys()
    assert {"dropped", "expired"} <= status["outbox"].keys()
    json.dumps(status)


def test_post_quantum_hybrid_suite_delivers_end_to_end(tmp_path, pki, broker):
    """ML-KEM-768 + X25519 for both directions: events to the center, acks to the device."""
    from tests.support.lab import Lab

    lab = Lab(tmp_path, pki, broker.port, kem="mlkem768-x25519")
    try:
        watch = lab.watch()
        home = lab.home("hem-pq").start()
        ids = home.simulate("alarm", kind="fall") + home.simulate("event", count=5)
        watch.wait_ids(ids, timeout=15)
        wait_for(lambda: home.depth() == 0, 10, "acks sealed with the hybrid KEM to clear the outbox")
        assert b'"kem": "mlkem768-x25519"' in (home.dir / "center.pub").read_bytes()
    finally:
        lab.close()


def test_an_alarm_the_broker_dropped_is_sent_again_within_seconds_not_after_the_bulk_window(lab):
    """No receiver has ever subscribed (a new center), so the broker drops the fall: nobody
    queues it. The device must send it again within seconds (2, 4, 8 s ...), not after the bulk
    window's resend_after_s (30 s here, as shipped), once a receiver is there."""
    home = lab.home("hem-drop", outbox={"resend_after_s": 30.0}).start()
    [fall] = home.simulate("alarm", kind="fall")
    raised = time.monotonic()
    watch = lab.watch()  # the receiver's first session: what was published before it is gone
    watch.wait_ids([fall], timeout=25)
    assert time.monotonic() - raised < 20, "the dropped fall waited for the bulk window"
    assert [e["id"] for e in watch.events].count(fall) == 1

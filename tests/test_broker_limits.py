"""What the receiving side learns of the broker's limits and warns of (center/brokerlimits.py):
the rule itself, then real `trygg center run` services against real Mosquitto brokers on
Mosquitto's defaults, on Trygg's shipped limits, and on a queue so small that it drops, each
read back through `trygg center receivers --json` as an installer's script would."""

import json

import pytest

from base.keys import Identity, write_public
from center import brokerlimits
from center.brokerlimits import BrokerLimits, dropped_warning, queue_needed, warnings
from tests.support.broker import Broker, broker_limits_shipped
from tests.support.lab import Lab, trygg, wait_for

HOMES = 3  # more than Mosquitto's default queue (1000) can hold whole windows (500 each) for


# -- the rule ------------------------------------------------------------------------------------


def test_the_shipped_limits_say_nothing_and_each_too_small_limit_is_named():
    shipped = BrokerLimits(receive_maximum=100)
    assert warnings(shipped, 2000, 86400) == []
    assert queue_needed(2000) == 1_000_000 and queue_needed(0) == brokerlimits.DEVICE_WINDOW
    [qos] = warnings(BrokerLimits(100, maximum_qos=0), 10, 60)
    assert "QoS 0 only" in qos
    [size] = warnings(BrokerLimits(100, maximum_packet_size=256 * 1024), 10, 60)
    assert "look-in pictures" in size and str(brokerlimits.MAX_PICTURE_ENVELOPE) in size
    assert warnings(BrokerLimits(100, maximum_packet_size=brokerlimits.MAX_PICTURE_ENVELOPE + 1024), 10, 60) == []
    [expiry] = warnings(BrokerLimits(100, session_expiry_s=30), 10, 3600)
    assert "only 30 s" in expiry and "asked 3600 s" in expiry
    assert warnings(BrokerLimits(100, session_expiry_s=3600), 10, 3600) == []
    assert warnings(BrokerLimits(20), 2, 60) == []  # two homes' windows fit Mosquitto's default queue
    [default] = warnings(BrokerLimits(20), 3, 60)
    assert "default limits" in default and "needs 1500" in default


def test_the_dropped_counter_warns_on_a_first_reading_above_zero_and_on_each_rise():
    assert dropped_warning(None, 0, 5) is None
    assert "has dropped 7 message(s) since it started" in dropped_warning(None, 7, 5)
    assert dropped_warning(7, 7, 5) is None
    rise = dropped_warning(7, 10, 2000)
    assert "dropped 3 more" in rise and "at least 1000000 for 2000 homes" in rise


# -- real services, real brokers ----------------------------------------------------------------


def enroll_many(lab: Lab, tmp_path, count: int) -> None:
    """Homes that never connect: what the receiver sizes its warnings by is the homes it serves."""
    folder = tmp_path / "keys"
    folder.mkdir()
    for i in range(count):
        write_public(Identity.generate(f"hem-{i:03d}").public(), folder / f"hem-{i:03d}.pub")
    trygg("center", "add-homes", folder, "--config", lab.center_config)


def receivers(lab: Lab) -> list[dict]:
    return json.loads(trygg("center", "receivers", "--json", "--config", lab.center_config).stdout)


def lanes_reported(lab: Lab) -> dict | None:
    rows = [r for r in receivers(lab) if r["broker"] and set(r["broker"]["lanes"]) == {"alarm", "bulk"}]
    return rows[0]["broker"] if rows else None


@pytest.fixture
def make_lab(tmp_path, pki):
    made: list = []

    def make(*extra: str, max_queued: int | None = None) -> Lab:
        broker = Broker(tmp_path / f"broker-{len(made)}", pki, max_queued=max_queued, extra=extra)
        broker.start()
        made.append(broker)
        lab = Lab(tmp_path / f"lab-{len(made)}", pki, broker.port)
        made.append(lab)
        return lab
    yield make
    for thing in reversed(made):
        thing.close()


def test_on_mosquittos_defaults_the_service_says_what_it_got_and_warns_that_the_queue_is_too_small(make_lab, tmp_path):
    lab = make_lab()
    enroll_many(lab, tmp_path, HOMES)
    watch = lab.watch()
    report = wait_for(lambda: lanes_reported(lab), 20, "the service's broker report")
    assert report["homes"] == HOMES and report["queue_needed"] == HOMES * brokerlimits.DEVICE_WINDOW
    for lane in ("alarm", "bulk"):
        assert report["lanes"][lane]["limits"]["receive_maximum"] == 20
        assert any("default limits" in w for w in report["lanes"][lane]["warnings"])
    text = trygg("center", "receivers", "--config", lab.center_config).stdout
    assert "Receive Maximum 20" in text and "WARNING: the broker looks like Mosquitto on its default limits" in text
    assert "default limits" in watch.log.with_suffix(".service.log").read_text()


def test_on_trygg_s_shipped_broker_config_the_service_warns_of_nothing(make_lab, tmp_path):
    lab = make_lab(*broker_limits_shipped())
    enroll_many(lab, tmp_path, HOMES)
    lab.watch()
    report = wait_for(lambda: lanes_reported(lab), 20, "the service's broker report")
    assert {lane: r["limits"]["receive_maximum"] for lane, r in report["lanes"].items()} == {"alarm": 100, "bulk": 100}
    assert [w for r in report["lanes"].values() for w in r["warnings"]] == []


def test_a_broker_that_drops_for_a_full_queue_is_named_by_the_service(make_lab):
    lab = make_lab("sys_interval 1", max_queued=5)
    home = lab.home("hem-drops").start()
    watch = lab.watch()
    watch.proc.terminate()  # the service away: its session's queue at the broker fills
    watch.proc.wait(30)
    home.simulate("event", count=40)  # published at once; the broker keeps 5 for the service
    watch.proc = None
    lab.watch()

    def dropped() -> list[str]:
        report = lanes_reported(lab)
        return [w for w in (report or {}).get("lanes", {}).get("bulk", {}).get("warnings", []) if "dropped" in w]
    [warning] = wait_for(dropped, 30, "the dropped-message warning")
    assert "queue" in warning and "max_queued_messages" in warning


def test_the_shipped_broker_config_as_a_whole_runs_in_mosquitto_and_grants_what_the_rule_says(pki, tmp_path):
    """config/mosquitto-trygg.conf.example with only its paths and port made local: Mosquitto 2.0
    reads every line of it (a line it misreads fails the start), and a receiver connecting with
    the center's certificate is granted the shipped Receive Maximum and warned of nothing."""
    import os
    import subprocess
    import threading

    import paho.mqtt.client as mqtt

    from tests.support.broker import SHIPPED_ACL, SHIPPED_CONF, find_mosquitto, free_port

    port = free_port()
    acl = tmp_path / "trygg.acl"
    acl.write_text(SHIPPED_ACL.read_text())
    local = {"listener": f"listener {port} 127.0.0.1", "cafile": f"cafile {pki.ca.resolve()}",
             "certfile": f"certfile {pki.broker_cert.resolve()}", "keyfile": f"keyfile {pki.broker_key.resolve()}",
             "acl_file": f"acl_file {acl}"}
    lines = [local.get(line.split(" ", 1)[0], line) for line in SHIPPED_CONF.read_text().splitlines()]
    lines += [f"persistence_location {tmp_path}/", f"log_dest file {tmp_path / 'mosquitto.log'}"]
    lines += ["user root"] if os.geteuid() == 0 else []
    conf = tmp_path / "mosquitto.conf"
    conf.write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen([find_mosquitto(), "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "running" in (tmp_path / "mosquitto.log").read_text()
                 if (tmp_path / "mosquitto.log").exists() else proc.poll() is not None, 10, "mosquitto to start")
        assert proc.poll() is None, proc.stdout.read().decode()
        granted: dict = {}
        connected = threading.Event()

        def on_connect(client, userdata, flags, reason_code, properties):
            granted["limits"] = BrokerLimits.from_connack(properties)
            connected.set()
        cert, key = pki.client("center")
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="shipped-probe", protocol=mqtt.MQTTv5)
        client.tls_set(ca_certs=str(pki.ca), certfile=str(cert), keyfile=str(key))
        client.on_connect = on_connect
        client.connect("127.0.0.1", port)
        client.loop_start()
        assert connected.wait(10), "no CONNACK from the shipped config"
        client.disconnect()
        client.loop_stop()
        assert granted["limits"].receive_maximum == 100
        assert warnings(granted["limits"], 2000, 86400) == []
    finally:
        proc.terminate()
        proc.wait(10)

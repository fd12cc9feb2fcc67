"""Two real Mosquitto processes on loopback (same CA and ACL) and a lab whose center knows both:
[broker] and [broker_fallback], as a municipality with a second alarm path runs it. Shared by the
tests of the second broker (tests/test_failover.py's set-up, made importable)."""

import contextlib
import os
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt

from tests.support.broker import Broker
from tests.support.lab import Lab, edit_toml

FAST = {"outbox": {"resend_after_s": 1.0}, "uplink": {"backoff_min_s": 0.1, "backoff_max_s": 0.5}}
LAB_FAILOVER_S = 2.0
LAB_RETRY_S = 1.0


@contextlib.contextmanager
def two_brokers(pki, root: Path) -> Iterator[tuple[Lab, Broker, Broker]]:
    """Two brokers, and a lab whose center.toml has the second as its [broker_fallback]."""
    with Broker(root / "first", pki) as first, Broker(root / "second", pki) as second:
        lab = Lab(root / "lab", pki, first.port)
        center = lab.center_config.read_text()
        broker = center[center.index("[broker]"):].split("\n[", 1)[0]
        fallback = broker.replace("[broker]", "[broker_fallback]").replace(f"port = {first.port}", f"port = {second.port}")
        assert fallback != broker.replace("[broker]", "[broker_fallback]"), "the center's broker port was not found"
        lab.center_config.write_text(center.rstrip("\n") + "\n\n" + fallback.rstrip("\n") + "\n")
        try:
            yield lab, first, second
        finally:
            lab.close()


def home_on_both(lab: Lab, second: Broker, home_id: str, **overrides: dict):
    """A home whose [broker_fallback] is the second broker, moving there after LAB_FAILOVER_S."""
    home = lab.home(home_id, **{**FAST, **overrides})
    section = tomllib.loads(home.config.read_text())["broker"]
    edit_toml(home.config, {"broker_fallback": {**section, "port": second.port, "failover_after_s": LAB_FAILOVER_S,
                                                "retry_first_s": LAB_RETRY_S}})
    return home


class Publisher:
    """A bare paho client with the center's certificate on one broker (the ACL lets CN center write
    every Trygg topic): what a test uses to put a retained message where it wants it."""

    def __init__(self, pki, port: int) -> None:
        cert, key = pki.client("center")
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-pub-{os.urandom(4).hex()}",
                                  protocol=mqtt.MQTTv5)
        self.client.tls_set(ca_certs=str(pki.ca), certfile=str(cert), keyfile=str(key))
        connected = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: connected.set() if not rc.is_failure else None
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert connected.wait(10), f"test publisher did not connect to 127.0.0.1:{port}"

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

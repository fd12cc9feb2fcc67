#!/usr/bin/env python3
"""The hostile publisher for bench/commands.py: floods one home's command topic, in its own process.

Usage: python bench/_flood.py PORT CA CERT KEY DEVICE_PUB HOME QOS SECONDS
Connects with raw paho-mqtt 2.x (MQTT 5, mutual TLS, the given client certificate), prints
"ready", waits for a line on stdin, publishes as fast as its socket takes messages for SECONDS,
then prints one JSON line: {"sent", "acked", "elapsed", "cpu", "disconnects"}. Loopback only.
"""

import json
import os
import random
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root, for agent.*

LOCK = {"lock": "front-door"}


def flood_payloads(device_pub: str, home: str, n: int = 60) -> list[bytes]:
    """Garbage, garbage behind a valid header, and sealed commands signed by an unenrolled key."""
    from base.keys import Identity, load_public
    from protocol import envelope, topics
    from protocol.ids import new_id
    from protocol.messages import CommandMessage, encode

    device = load_public(Path(device_pub))
    topic = topics.command(home)
    mallory = Identity.generate("mallory")
    rng = random.Random(7)
    header_bytes = envelope.HEADER.pack(envelope.VERSION, device.kem.suite_id, device.kem.kid)
    out = []
    for _ in range(n):
        now = datetime.now(timezone.utc)
        cmd = CommandMessage(id=new_id(), home=home, action="unlock", args=LOCK, issued=now,
                             expires=now + timedelta(seconds=60))
        sealed = envelope.seal(encode(cmd), topic, mallory.sign, device.kem)
        out += [rng.randbytes(len(sealed)), header_bytes + rng.randbytes(len(sealed) - len(header_bytes)), sealed]
    return out


def flood(port: int, ca: str, cert: str, key: str, device_pub: str, home: str, qos: int, seconds: float) -> None:
    import paho.mqtt.client as mqtt

    from protocol import topics

    payloads = flood_payloads(device_pub, home)
    topic = topics.command(home)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-flood-{os.getpid()}",
                         protocol=mqtt.MQTTv5)
    client.tls_set(ca_certs=ca, certfile=cert, keyfile=key)
    client.max_inflight_messages_set(100)
    client.max_queued_messages_set(0)
    state = {"acked": 0, "connected": False, "disconnects": []}

    def on_disconnect(c, u, flags, rc, p) -> None:
        state["connected"] = False
        state["disconnects"].append(str(rc))

    client.on_connect = lambda c, u, f, rc, p: state.update(connected=not rc.is_failure)
    client.on_disconnect = on_disconnect
    client.on_publish = lambda c, u, mid, rc, p: state.update(acked=state["acked"] + 1)

    def connect(first: bool) -> None:
        client.connect("127.0.0.1", port) if first else client.reconnect()
        deadline = time.monotonic() + 20
        while not state["connected"] and time.monotonic() < deadline:
            client.loop(0.1)

    connect(True)
    print("ready", flush=True)
    sys.stdin.readline()  # "go"
    sent = abandoned = 0
    t0, cpu0 = time.monotonic(), sum(os.times()[:2])
    end = t0 + seconds
    # One thread, no loop_start: publish() writes straight to the socket; when the socket is full
    # loop() waits until it can write, so the flood runs exactly as fast as the broker reads.
    # Disconnected (Mosquitto 2.0 drops a QoS 1 publisher whose messages it cannot queue for the
    # subscriber, logging "out of memory"): reconnect at once, as an attacker would.
    while time.monotonic() < end:
        if not state["connected"]:
            abandoned = sent - state["acked"] if qos else 0  # in flight on the old connection: gone
            connect(False)
            continue
        if qos and sent - state["acked"] - abandoned >= 100:
            client.loop(0.01)
            continue
        if client.publish(topic, payloads[sent % len(payloads)], qos=qos).rc == mqtt.MQTT_ERR_SUCCESS:
            sent += 1
        if client.want_write() or sent % 200 == 0:
            client.loop(0.0 if not client.want_write() else 0.05)
    elapsed = time.monotonic() - t0
    while client.want_write() and state["connected"] and time.monotonic() < end + 5:
        client.loop(0.05)
    cpu = sum(os.times()[:2]) - cpu0
    print(json.dumps({"sent": sent, "acked": state["acked"], "elapsed": elapsed, "cpu": cpu,
                      "disconnects": state["disconnects"]}), flush=True)
    client.disconnect()


if __name__ == "__main__":
    port, ca, cert, key, device_pub, home, qos, seconds = sys.argv[1:9]
    flood(int(port), ca, cert, key, device_pub, home, int(qos), float(seconds))

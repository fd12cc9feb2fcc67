#!/usr/bin/env python3
"""Backlog drain after an outage: how fast a home empties its outbox once the link returns.

Set-up (all real processes, loopback only): a Mosquitto with mutual TLS (tests.support.broker),
a home running `trygg run` whose broker address is a TcpProxy in front of the broker, and a
receiver `trygg center watch --json` (tests.support.lab). The home uses outbox.resend_after_s =
30 so that no re-send distorts the figures.

The outage: the daemon is stopped while DRAIN_N (default 5000) events with a ~300 B body are
sealed with the home's own keys (agent.sealer.Sealer) and committed into its outbox
(agent.outbox.Outbox). The control socket's simulate op cannot be used for this: it only makes
events with a fixed `{"simulated": true}` body. Then the daemon is started (the link is back)
and its status is polled over the control socket every 100 ms; the end time is the daemon's own
stamp (`last_ack` / `last_puback`), the start its `connected_since`, so neither the daemon's
start-up nor the poll interval is counted.
  A  end to end: connected -> outbox empty (every event opened, verified, recorded by the
     receiver, acknowledged with a signed ack, deleted).
  C  the same through TcpProxy.set_delay(0.05): 50 ms each way, 100 ms RTT.
  B  the uplink's own publish rate: the receiver stopped and uplink.max_unacked above N, so
     nothing but the broker's PUBACKs paces it: connected -> last PUBACK of the N.
Baseline: raw paho-mqtt 2.x in its own process (MQTT 5, same mTLS setup, TCP_NODELAY,
max_inflight_messages_set(100), a window of 100 QoS 1 publishes), through the same proxy to the
same broker, N payloads of the sealed events' average size, on a topic the (stopped) receiver's
persistent session is subscribed to: the same receiver-side situation as phase B. Also through
the 100 ms RTT proxy, for reference.
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (BODY_300, env_float, env_int, fmt, header, result, say, status, temp_root,  # noqa: E402
                     wait_until)

B = "drain"
N = env_int("DRAIN_N", 5000)
DELAY_S = env_float("DRAIN_DELAY_S", 0.05)
PHASE_TIMEOUT = env_float("DRAIN_TIMEOUT_S", 120.0)
RAW_CLIENT = "bench-raw"
# Every status call counts the outbox with a full scan under the outbox lock (Outbox.stats), so
# polling fast slows the drain down; the end times come from the daemon's own last_ack /
# last_puback stamps, so a slow poll costs no precision.
POLL_S = 0.1


# -- the raw paho baseline (run in a child process: `drain.py --raw ...`) ------------------
def raw_publisher(port: int, ca: str, cert: str, key: str, n: int, size: int, window: int) -> None:
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{RAW_CLIENT}-{os.getpid()}",
                         protocol=mqtt.MQTTv5)
    client.tls_set(ca_certs=ca, certfile=cert, keyfile=key)
    client.max_inflight_messages_set(window)
    client.max_queued_messages_set(0)
    client.on_socket_open = lambda c, u, s: s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    cond = threading.Condition()
    state = {"acked": 0, "connected": False}

    def on_connect(c, u, f, rc, p) -> None:
        with cond:
            state["connected"] = not rc.is_failure
            cond.notify_all()

    def on_publish(c, u, mid, rc, p) -> None:
        with cond:
            state["acked"] += 1
            cond.notify_all()

    client.on_connect = on_connect
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        with cond:
            cond.wait_for(lambda: state["connected"], 20)
        payload = os.urandom(size)
        topic = f"trygg/v1/{RAW_CLIENT}/up/event"
        deadline = time.monotonic() + PHASE_TIMEOUT
        t0 = time.perf_counter()
        for sent in range(n):
            with cond:
                cond.wait_for(lambda: sent - state["acked"] < window or time.monotonic() > deadline, 60)
            client.publish(topic, payload, qos=1)
        with cond:
            cond.wait_for(lambda: state["acked"] >= n or time.monotonic() > deadline, PHASE_TIMEOUT)
        elapsed = time.perf_counter() - t0
        print(json.dumps({"n": state["acked"], "elapsed": elapsed}), flush=True)
    finally:
        client.loop_stop()
        client.disconnect()


def run_raw(port: int, pki, n: int, size: int) -> tuple[float, int]:
    cert, key = pki.client(RAW_CLIENT)
    proc = subprocess.run([sys.executable, __file__, "--raw", str(port), str(pki.ca), str(cert), str(key), str(n),
                           str(size), "100"], capture_output=True, text=True, timeout=PHASE_TIMEOUT + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"raw publisher failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return out["n"] / out["elapsed"], out["n"]


# -- the Trygg side ------------------------------------------------------------------------
def prefill_offline(home, n: int) -> tuple[float, float]:
    """While the daemon is stopped (the outage), commit n sealed events into its outbox.

    The control socket's simulate op only makes events with a fixed tiny body, so the ~300 B
    events are sealed here with the home's own keys (agent.sealer.Sealer) and committed through
    agent.outbox.Outbox, as the daemon would. Returns (rows/s committed, average payload bytes).
    """
    from agent import config as cfgmod
    from base.clock import SystemClock
    from protocol.events import Event
    from base.keys import load_private, load_public
    from agent.outbox import Outbox
    from agent.sealer import Sealer

    cfg = cfgmod.load(home.config)
    sealer = Sealer(cfg.home.id, load_private(cfg.keys.device), load_public(cfg.keys.center).kem, SystemClock())
    event = Event("event", "door_open", BODY_300)
    t0 = time.perf_counter()
    rows = [sealer.seal(event)[1] for _ in range(n)]
    outbox = Outbox(cfg.outbox.path, cfg.outbox.max_bytes,
                    {"event": cfg.outbox.ttl_event_s, "telemetry": cfg.outbox.ttl_telemetry_s})
    try:
        for i in range(0, n, 500):
            outbox.put_many(rows[i : i + 500])
    finally:
        outbox.close()
    return n / (time.perf_counter() - t0), sum(len(r.payload) for r in rows) / n


def start_and_time(home, n: int, until: str) -> dict:
    """Start the daemon (the link comes back) and poll its status until the outbox is empty
    (until="empty") or n rows were PUBACKed (until="puback"). Times are the daemon's own
    wall-clock stamps: connected_since, last_ack, last_puback."""
    from base.errors import DaemonNotRunning
    from tests.support.lab import ENV, TRYGG

    sock = home.dir / "trygg.sock"
    t_start = time.time()
    # Like Home.start(), but polled in-process: Home.start() runs `trygg status` processes, whose
    # Python start-up would compete for the two cores with the drain being timed.
    with open(home.log, "a") as log:
        home.proc = subprocess.Popen([*TRYGG, "run", "--config", str(home.config)], stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=subprocess.STDOUT, env=ENV)
    deadline = time.monotonic() + PHASE_TIMEOUT
    while True:
        if home.proc.poll() is not None:
            raise RuntimeError(f"daemon exited with {home.proc.returncode}: {home.log.read_text()[-2000:]}")
        try:
            st = status(sock)
        except DaemonNotRunning:
            time.sleep(POLL_S)
            continue
        remaining = sum(c["depth"] for c in st["outbox"]["classes"].values())
        t_connected = st["connected_since"]
        if until == "empty" and remaining == 0 and t_connected and st["last_ack"]:
            t_end = st["last_ack"]  # the ack that emptied the outbox; the rows are deleted right after it
            break
        if until == "puback" and st["published"] >= n and st["in_flight"] == 0 and st["last_puback"]:
            t_end = st["last_puback"]
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"drain did not finish in {PHASE_TIMEOUT} s: {remaining} left, "
                               f"{st['published']} published")
        time.sleep(POLL_S)
    return {
        "start_to_connected": t_connected - t_start,
        "elapsed": t_end - t_connected,
        "published": st["published"],
        "reconnects": st["reconnects"],
        "rate": n / (t_end - t_connected),
    }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--raw":
        port, ca, cert, key, n, size, window = sys.argv[2:9]
        raw_publisher(int(port), ca, cert, key, int(n), int(size), int(window))
        return

    from base.labpki import make_lab_pki
    from tests.support.broker import Broker
    from tests.support.lab import Lab, edit_toml
    from tests.support.netproxy import TcpProxy

    header(f"drain: backlog of {N} events (~300 B body) after an outage, mTLS Mosquitto on loopback")
    with temp_root("drain") as root:
        pki = make_lab_pki(root / "pki", ["center", RAW_CLIENT])
        lab = None
        with Broker(root / "broker", pki) as broker, TcpProxy("127.0.0.1", broker.port) as proxy:
            try:
                lab = Lab(root, pki, broker.port)
                overrides = {"outbox": {"resend_after_s": 30.0},
                             "uplink": {"backoff_min_s": 0.05, "backoff_max_s": 0.2}}
                home = lab.home("hem-drain", port=proxy.port, **overrides)
                watch = lab.watch()
                home.start()
                sock = home.dir / "trygg.sock"
                wait_until(lambda: status(sock)["link"] == "connected", 20, "the home to connect")

                # A: end to end, no delay
                home.stop()  # the outage: the daemon is down while the backlog builds up
                fill, size = prefill_offline(home, N)
                say(f"prefill (daemon stopped; sealed + committed with the home's keys): {fmt(fill)} events/s; "
                    f"sealed payload {size:.0f} B")
                a = start_and_time(home, N, "empty")
                shown = len(watch.events)
                result(B, "A end to end: connected -> outbox empty", a["rate"], "msg/s",
                       note=f"{a['elapsed']:.2f} s; {a['published']} publishes; receiver showed {shown}")

                # C: end to end through a 100 ms RTT link
                home.stop()
                prefill_offline(home, N)
                proxy.set_delay(DELAY_S)
                c = start_and_time(home, N, "empty")
                proxy.set_delay(0)
                result(B, f"C end to end, {DELAY_S * 2000:.0f} ms RTT: connected -> empty", c["rate"], "msg/s",
                       ">= 500", c["rate"] >= 500,
                       note=f"{c['elapsed']:.2f} s; connecting (TLS over the slow link) took "
                            f"{c['start_to_connected']:.2f} s from start; {c['published']} publishes")

                # B: the uplink alone, PUBACK-paced (no receiver, end-to-end window out of the way)
                watch.stop()
                home.stop()
                edit_toml(home.config, {"uplink": {"max_unacked": min(N + 1000, 100_000)},
                                        "outbox": {"resend_after_s": 60.0}})
                prefill_offline(home, N)
                b = start_and_time(home, N, "puback")
                result(B, "B uplink publish rate: connected -> last PUBACK", b["rate"], "msg/s",
                       note=f"{b['elapsed']:.2f} s; receiver stopped; max_unacked {min(N + 1000, 100_000)}")
                home.stop()

                # the raw paho baseline, same broker, same proxy, same payload size
                raw, raw_n = run_raw(proxy.port, pki, N, int(round(size)))
                result(B, f"raw paho QoS 1, window 100, {int(round(size))} B (n={raw_n})", raw, "msg/s",
                       note="same mTLS broker and proxy; receiver stopped, as in B")
                proxy.set_delay(DELAY_S)
                raw_d, raw_dn = run_raw(proxy.port, pki, N, int(round(size)))
                proxy.set_delay(0)
                result(B, f"raw paho, {DELAY_S * 2000:.0f} ms RTT (n={raw_dn})", raw_d, "msg/s",
                       note="reference for C: 100 in flight / RTT bounds both")

                rb, ra = b["rate"] / raw, a["rate"] / raw
                result(B, "ratio uplink publish (B) / raw paho", rb, "x", ">= 0.8", rb >= 0.8, digits=2,
                       note="both PUBACK-paced, receiver stopped")
                result(B, "ratio end to end (A) / raw paho", ra, "x", ">= 0.8", ra >= 0.8, digits=2,
                       note="A also waits for the receiver's open+verify+fsync+ack")
                result(B, f"ratio C ({DELAY_S * 2000:.0f} ms RTT) / raw paho at the same RTT", c["rate"] / raw_d, "x",
                       digits=2)
            finally:
                if lab is not None:
                    lab.close()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Durable ingest rate: Trygg's outbox + group commit against a store-and-forward Mosquitto bridge.

Trygg side: the real API the daemon uses, `agent.outbox.Outbox` + `agent.commit.GroupCommitter`
(the default group-commit window, `outbox.group_commit_ms`), with rows sealed by `agent.sealer.Sealer` beforehand (the seal rate is printed
on its own):
  (a) alarms, one `put` at a time from one thread: every row its own fsynced transaction;
  (b) events, `put` from INGEST_THREADS threads at once (group commit);
  (c) telemetry, likewise; plus events from INGEST_MANY_THREADS threads (group commit at scale).

Baseline: a local Mosquitto with `persistence true`, `autosave_on_changes true`,
`autosave_interval 1` (the in-memory DB is saved after every change) and a `cleansession false`
bridge to an unreachable loopback port, so every message is queued in the local broker as a
store-and-forward bridge does during an outage. A paho client (MQTT 5, plain TCP on 127.0.0.1,
no TLS, TCP_NODELAY on both sides) publishes QoS 1: one at a time (each PUBACK awaited) and
pipelined (100 in flight). Payloads are the same sealed bytes Trygg stores.

Each comparison uses the same number of messages on both sides (the bridge's cost per message
grows with its queue, Trygg's hardly): INGEST_ONE (default 2000) for the one-at-a-time pair,
INGEST_PIPE (default 5000) for the concurrent/pipelined pair. Also INGEST_THREADS (8),
INGEST_MANY_THREADS (64), INGEST_PHASE_S (time cap per phase, 30 s).
"""

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (BODY_300, env_float, env_int, header, percentile, result, say,  # noqa: E402
                     temp_root, wait_until)

import paho.mqtt.client as mqtt  # noqa: E402

from base.clock import SystemClock  # noqa: E402
from agent.commit import GroupCommitter  # noqa: E402
from agent.config import OutboxConfig  # noqa: E402
from protocol.events import Event  # noqa: E402
from base.keys import Identity  # noqa: E402
from agent.outbox import Outbox  # noqa: E402
from agent.sealer import Sealer  # noqa: E402
from tests.support.broker import find_mosquitto, free_port  # noqa: E402
from tests.support.lab import stop_process  # noqa: E402

B = "ingest"
N_ONE = env_int("INGEST_ONE", 2000)  # alarms one at a time, and the bridge one at a time
N_PIPE = env_int("INGEST_PIPE", 5000)  # events/telemetry concurrently, and the bridge pipelined
THREADS = env_int("INGEST_THREADS", 8)
MANY_THREADS = env_int("INGEST_MANY_THREADS", 64)
PHASE_S = env_float("INGEST_PHASE_S", 30.0)
WINDOW_S = OutboxConfig().group_commit_ms / 1000  # the product default
HOME = "hem-bench"


# -- Trygg ---------------------------------------------------------------------------------
def seal_rows(sealer: Sealer, cls: str, n: int) -> tuple[list, float]:
    event = Event(cls, {"alarm": "fall", "event": "door_open", "telemetry": "room_climate"}[cls], BODY_300)
    t0 = time.perf_counter()
    rows = [sealer.seal(event)[1] for _ in range(n)]
    return rows, time.perf_counter() - t0


def new_outbox(root: Path, name: str, window_s: float = WINDOW_S) -> tuple[Outbox, GroupCommitter]:
    outbox = Outbox(root / f"{name}.db", max_bytes=4 << 30, ttl_s={"event": 7 * 86400.0, "telemetry": 86400.0})
    return outbox, GroupCommitter(outbox, window_s)


def direct(root: Path, rows: list) -> tuple[float, int]:
    """Outbox.put_many one row per call, no committer thread: what SQLite alone costs."""
    outbox = Outbox(root / "direct.db", max_bytes=4 << 30, ttl_s={"event": 7 * 86400.0, "telemetry": 86400.0})
    deadline = time.monotonic() + PHASE_S
    done = 0
    try:
        t0 = time.perf_counter()
        for row in rows:
            outbox.put_many([row])
            done += 1
            if time.monotonic() > deadline:
                break
        return done / (time.perf_counter() - t0), done
    finally:
        outbox.close()


def one_at_a_time(root: Path, rows: list) -> tuple[float, int, list[float]]:
    outbox, committer = new_outbox(root, "alarms")
    lat = []
    deadline = time.monotonic() + PHASE_S
    t0 = time.perf_counter()
    done = 0
    try:
        for row in rows:
            s = time.perf_counter()
            if not committer.put(row):
                raise RuntimeError("alarm refused")
            lat.append(time.perf_counter() - s)
            done += 1
            if time.monotonic() > deadline:
                break
        elapsed = time.perf_counter() - t0
    finally:
        committer.close()
        outbox.close()
    return done / elapsed, done, lat


def concurrent(root: Path, name: str, rows: list, threads: int, window_s: float = WINDOW_S
               ) -> tuple[float, int, list[float]]:
    outbox, committer = new_outbox(root, name, window_s)
    shares = [rows[i::threads] for i in range(threads)]
    lat: list[list[float]] = [[] for _ in range(threads)]
    counts = [0] * threads
    errors: list[BaseException] = []
    deadline = time.monotonic() + PHASE_S
    start = threading.Barrier(threads + 1)

    def worker(i: int) -> None:
        try:
            start.wait()
            for row in shares[i]:
                s = time.perf_counter()
                if not committer.put(row):
                    raise RuntimeError("row refused")
                lat[i].append(time.perf_counter() - s)
                counts[i] += 1
                if time.monotonic() > deadline:
                    return
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in ts:
        t.join()
    elapsed = time.perf_counter() - t0
    committer.close()
    outbox.close()
    if errors:
        raise errors[0]
    done = sum(counts)
    return done / elapsed, done, [x for part in lat for x in part]


# -- the bridge baseline -------------------------------------------------------------------
def bridge_config(work: Path, port: int, dead_port: int) -> Path:
    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    lines = ["user root"] if os.geteuid() == 0 else []
    lines += [
        f"listener {port} 127.0.0.1",
        "allow_anonymous true",
        "set_tcp_nodelay true",
        "persistence true",
        f"persistence_location {data}/",
        "autosave_on_changes true",
        "autosave_interval 1",
        "max_queued_messages 0",  # unlimited: a store-and-forward bridge must not drop its queue
        "max_queued_bytes 0",
        f"log_dest file {work / 'mosquitto.log'}",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "connection outage",
        f"address 127.0.0.1:{dead_port}",
        "topic trygg/# out 1",
        "cleansession false",
        "notifications false",
        "bridge_protocol_version mqttv311",
        "restart_timeout 1 5",
        "start_type automatic",
    ]
    conf = work / "mosquitto.conf"
    conf.write_text("".join(line + "\n" for line in lines))
    return conf


class BridgeBroker:
    def __init__(self, work: Path) -> None:
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.dead_port = free_port()  # nothing listens here: the bridge's far end is unreachable
        self.conf = bridge_config(work, self.port, self.dead_port)
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "BridgeBroker":
        err = open(self.work / "stderr", "ab")
        self.proc = subprocess.Popen([find_mosquitto(), "-c", str(self.conf)], stdout=err, stderr=err,
                                     stdin=subprocess.DEVNULL, cwd=self.work, start_new_session=True)
        err.close()

        def up() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"bridge mosquitto exited: {(self.work / 'stderr').read_text()[-2000:]}")
            import socket
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                return False

        wait_until(up, 10, "the bridge broker to listen")
        return self

    def db_size(self) -> int:
        db = self.work / "data" / "mosquitto.db"
        return db.stat().st_size if db.exists() else 0

    def __exit__(self, *exc) -> None:
        stop_process(self.proc)


def _nodelay(client, userdata, sock) -> None:
    import socket
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def paho_client(port: int, inflight: int) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-{os.getpid()}-{inflight}",
                         protocol=mqtt.MQTTv5)
    client.on_socket_open = _nodelay
    client.max_inflight_messages_set(inflight)
    client.max_queued_messages_set(0)
    connected = threading.Event()
    client.on_connect = lambda c, u, f, rc, p: connected.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    if not connected.wait(10):
        raise RuntimeError("paho did not connect to the bridge broker")
    return client


def bridge_one_at_a_time(work: Path, payloads: list[bytes]) -> tuple[float, int, list[float], int]:
    with BridgeBroker(work) as broker:
        client = paho_client(broker.port, 1)
        lat = []
        deadline = time.monotonic() + PHASE_S
        try:
            t0 = time.perf_counter()
            for i, payload in enumerate(payloads):
                s = time.perf_counter()
                info = client.publish(f"trygg/v1/{HOME}/up/alarm", payload, qos=1)
                info.wait_for_publish(30)
                if not info.is_published():
                    raise RuntimeError("no PUBACK from the bridge broker in 30 s")
                lat.append(time.perf_counter() - s)
                if time.monotonic() > deadline:
                    break
            elapsed = time.perf_counter() - t0
        finally:
            client.loop_stop()
            client.disconnect()
        time.sleep(0.3)
        return len(lat) / elapsed, len(lat), lat, broker.db_size()


def bridge_pipelined(work: Path, payloads: list[bytes], window: int = 100) -> tuple[float, int, int]:
    with BridgeBroker(work) as broker:
        client = paho_client(broker.port, window)
        acked = [0]
        cond = threading.Condition()

        def on_publish(c, u, mid, rc, p) -> None:
            with cond:
                acked[0] += 1
                cond.notify_all()

        client.on_publish = on_publish
        deadline = time.monotonic() + PHASE_S
        try:
            t0 = time.perf_counter()
            sent = 0
            for payload in payloads:  # keep at most `window` unacknowledged, as the uplink does
                with cond:
                    while sent - acked[0] >= window and time.monotonic() < deadline:
                        cond.wait(0.5)
                if time.monotonic() > deadline:
                    break
                client.publish(f"trygg/v1/{HOME}/up/event", payload, qos=1)
                sent += 1
            with cond:
                while acked[0] < sent and time.monotonic() < deadline + 30:
                    cond.wait(0.5)
            elapsed = time.perf_counter() - t0
            done = acked[0]
        finally:
            client.loop_stop()
            client.disconnect()
        time.sleep(0.3)
        return done / elapsed, done, broker.db_size()


def ms(x: float) -> str:
    return f"{x * 1000:.2f}"


def main() -> None:
    header("ingest: durable accept rate (Trygg outbox + group commit vs a persisting Mosquitto bridge)")
    say(f"rows: ~300 B JSON body, sealed (Ed25519 + HPKE X25519); group commit window {WINDOW_S * 1000:.0f} ms; "
        f"cap {PHASE_S:.0f} s per phase; each outbox starts empty")
    device, center = Identity.generate(HOME), Identity.generate("center")
    sealer = Sealer(HOME, device, center.public().kem, SystemClock())
    alarms, t_a = seal_rows(sealer, "alarm", N_ONE)
    events, t_e = seal_rows(sealer, "event", N_PIPE)
    telemetry, t_t = seal_rows(sealer, "telemetry", N_PIPE)
    size = sum(len(r.payload) for r in events) / max(len(events), 1)
    say(f"sealed payload: {size:.0f} B average")
    result(B, "seal rate (sign + seal, one thread)", (N_ONE + 2 * N_PIPE) / (t_a + t_e + t_t), "rows/s")

    def lat_note(lat: list[float]) -> str:
        return f"put p50 {ms(percentile(lat, 50))} ms, p99 {ms(percentile(lat, 99))} ms"

    with temp_root("ingest") as root:
        d_rate, d_n = direct(root, alarms)
        result(B, f"SQLite alone: Outbox.put_many 1 row/txn (n={d_n})", d_rate, "rows/s")
        a_rate, a_n, a_lat = one_at_a_time(root, alarms)
        result(B, f"(a) alarms one at a time, fsync each (n={a_n})", a_rate, "rows/s", note=lat_note(a_lat))
        b_rate, b_n, b_lat = concurrent(root, "events", events, THREADS)
        result(B, f"(b) events, {THREADS} threads, group commit (n={b_n})", b_rate, "rows/s", note=lat_note(b_lat))
        c_rate, c_n, c_lat = concurrent(root, "telemetry", telemetry, THREADS)
        result(B, f"(c) telemetry, {THREADS} threads, group commit (n={c_n})", c_rate, "rows/s",
               note=lat_note(c_lat))
        m_rate, m_n, m_lat = concurrent(root, "many", events, MANY_THREADS)
        result(B, f"(b') events, {MANY_THREADS} threads, group commit (n={m_n})", m_rate, "rows/s",
               note=lat_note(m_lat))
        z_rate, z_n, z_lat = concurrent(root, "window5", events, THREADS, window_s=0.005)
        result(B, f"(b5) events, {THREADS} threads, group_commit_ms=5 (n={z_n})", z_rate, "rows/s",
               note=lat_note(z_lat))

        say("baseline: local Mosquitto 2.0, persistence + autosave_on_changes + autosave_interval 1, bridge "
            "(cleansession false) to an unreachable 127.0.0.1 port, max_queued_messages 0 (unlimited);")
        say("          paho MQTT 5 client, plain TCP on 127.0.0.1 (no TLS), TCP_NODELAY both sides, QoS 1, "
            "same sealed payloads")
        o_rate, o_n, o_lat, o_db = bridge_one_at_a_time(root / "bridge-one", [r.payload for r in alarms])
        result(B, f"bridge: one at a time, PUBACK awaited (n={o_n})", o_rate, "msg/s",
               note=f"p50 {ms(percentile(o_lat, 50))} ms, p99 {ms(percentile(o_lat, 99))} ms; "
                    f"broker DB {o_db / 1024:.0f} KiB after")
        p_rate, p_n, p_db = bridge_pipelined(root / "bridge-pipe", [r.payload for r in events])
        result(B, f"bridge: pipelined, 100 in flight (n={p_n})", p_rate, "msg/s",
               note=f"broker DB {p_db / 1024:.0f} KiB after")
        if o_db < o_n * size * 0.5 or p_db < p_n * size * 0.5:
            say("  WARNING: the bridge broker's DB is smaller than the messages sent: were they queued?")

        say("comparisons (same n on both sides):")
        say("  one at a time: (a) alarm put, fsync each  vs  bridge publish with PUBACK awaited, one DB save each")
        say(f"  pipelined:     (b) events, {THREADS} threads, group commit  vs  bridge with 100 in flight")
        r1 = a_rate / o_rate
        r2 = b_rate / p_rate
        result(B, "ratio Trygg/bridge, one at a time: (a) / bridge one", r1, "x", ">= 10x", r1 >= 10, digits=1)
        result(B, "ratio Trygg/bridge, pipelined: (b) / bridge pipelined", r2, "x", ">= 10x", r2 >= 10, digits=1)
        result(B, f"(info) ratio (b') {MANY_THREADS} threads / bridge pipelined", m_rate / p_rate, "x", digits=1)
        result(B, "(info) ratio (b5) 5 ms window / bridge pipelined", z_rate / p_rate, "x", digits=1)


if __name__ == "__main__":
    main()

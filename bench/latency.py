#!/usr/bin/env python3
"""Alarm latency: `simulate alarm` on the home's control socket -> the receiver prints it.

Real processes on loopback: Mosquitto with mutual TLS, a home running `trygg run` connected
directly to it, and `trygg center watch --json`. For each of LATENCY_N (default 1000) alarms the
bench records the wall time just before it sends the simulate request on the control socket
(the same request `trygg simulate alarm` sends, without the CLI's Python start-up), and the
wall time at which a thread reading the watch process's stdout receives the line with that id.
Requests are spaced 5-10 ms apart (random), so alarms do not queue behind each other.

Also printed: the commit part alone (control request -> answer, i.e. sealed + fsynced), and the
receiver's own view, `received` minus the event's `time` (both stamped on this machine's clock,
millisecond resolution, the `time` taken inside the daemon just before sealing).
"""

import random
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (env_int, header, percentile, result, running_home, say, simulate, status,  # noqa: E402
                     temp_root, wait_until)


B = "latency"
N = env_int("LATENCY_N", 1000)
WARMUP = 20
SPACING_MS = (5.0, 10.0)


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def ms(values: list[float], p: float) -> float:
    return percentile(values, p) * 1000


def main() -> None:
    header(f"latency: simulate alarm -> receiver prints it, {N} alarms spaced 5-10 ms, mTLS loopback")
    with temp_root("latency") as root:
        with running_home(root, "hem-latency") as (home, watch, sock):
            rng = random.Random(1)
            sent: dict[str, float] = {}
            commit: list[float] = []
            warm = [simulate(sock, "alarm", 1, kind="fall")[0] for _ in range(WARMUP)]
            wait_until(lambda: all(i in watch.arrived for i in warm), 20, "the warm-up alarms")
            next_at = time.time()
            for _ in range(N):
                delay = next_at - time.time()
                if delay > 0:
                    time.sleep(delay)
                t0 = time.time()
                [alarm_id] = simulate(sock, "alarm", 1, kind="fall")
                t1 = time.time()
                sent[alarm_id] = t0
                commit.append(t1 - t0)
                next_at = t0 + rng.uniform(*SPACING_MS) / 1000
            wait_until(lambda: all(i in watch.arrived for i in sent), 30, "every alarm at the receiver", 0.05)
            lat = [watch.arrived[i] - t for i, t in sent.items()]
            with watch._cond:
                records = {e["id"]: e for e in watch.events if e.get("id") in sent}
            view = [parse_time(e["received"]) - parse_time(e["time"]) for e in records.values()]
            wait_until(lambda: status(sock)["outbox"]["classes"]["alarm"]["depth"] == 0, 20,
                       "every alarm acknowledged")

    say(f"{len(lat)} alarms; times in ms")
    result(B, "send -> receiver line: p50", ms(lat, 50), "ms", digits=2)
    result(B, "send -> receiver line: p95", ms(lat, 95), "ms", digits=2)
    result(B, "send -> receiver line: p99", ms(lat, 99), "ms", "< 50 ms", ms(lat, 99) < 50, digits=2)
    result(B, "send -> receiver line: max", ms(lat, 100), "ms", digits=2)
    result(B, "commit part (request -> answer, sealed + fsynced): p50", ms(commit, 50), "ms", digits=2)
    result(B, "commit part: p99", ms(commit, 99), "ms", digits=2)
    result(B, "receiver view (received - event time): p50", ms(view, 50), "ms", digits=1, note="1 ms resolution")
    result(B, "receiver view (received - event time): p99", ms(view, 99), "ms", digits=1)


if __name__ == "__main__":
    main()

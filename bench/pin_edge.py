#!/usr/bin/env python3
"""Pin edge on a fall mat -> the `fall` alarm printed by `trygg center watch --json`.

Real parts on loopback: Mosquitto with mutual TLS (`tests.support.broker`), the center's
`trygg center watch --json` as its own process (`tests.support.lab.Watch`), and the home's
`agent.daemon.Daemon` running in this process with `[gpio] pins = "mock"`, so the bench can
drive the floor mat's gpiozero MockFactory pin itself. The home is provisioned with `trygg init`
(`tests.support.lab.Lab`) and has one floor mat, `bedside`, with PIN_EDGE_DEBOUNCE_S (0.02)
debounce and PIN_EDGE_HOLD_S (0.1) hold, scheduled all day (00:00-12:00 and 12:00-00:00).

For each of PIN_EDGE_N (default 500) presses, after PIN_EDGE_WARMUP (5) not counted: the bench
takes `time.time()` and drives the pressure pin low (pressed, pull-up wiring), then waits for the
watch to print the next `fall` alarm; the line's time is `time.time()` in the thread reading the
watch's stdout (`Watch.arrived`). Then it releases the pin and waits for the `mat_clear` event
before the next press, so every press is a fresh alarm (spaced a further 0-20 ms, random).
The mat's timer runs from the first edge (debounce is part of hold), so the alarm can come no
earlier than hold_s after the edge: the target is on what comes on top of it.

Printed: p50/p99/max of edge -> printed and of edge -> printed minus hold_s (p99 target
< 50 ms), and the split at the event's own `time` stamp (taken in the daemon just before sealing,
ms resolution): edge -> stamped minus hold_s (the driver: wake-up, debounce and hold timers) and
stamped -> printed (seal, fsync, uplink, broker, receiver).
"""

import logging
import random
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import env_float, env_int, header, percentile, result, say, temp_root, wait_until  # noqa: E402

B = "pin_edge"
N = env_int("PIN_EDGE_N", 500)
WARMUP = env_int("PIN_EDGE_WARMUP", 5)
DEBOUNCE_S = env_float("PIN_EDGE_DEBOUNCE_S", 0.02)
HOLD_S = env_float("PIN_EDGE_HOLD_S", 0.1)
TIME_CAP_S = env_float("PIN_EDGE_TIME_S", 150.0)  # bound on the measured loop; the figures cover what was done
WAIT_S = 10.0  # bound on waiting for one alarm or clear
HOME = "hem-pin-edge"
MAT = "bedside"
ALL_DAY = [{"start": "00:00", "end": "12:00"}, {"start": "12:00", "end": "00:00"}]


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def ms(values: list[float], p: float) -> float:
    return percentile(values, p) * 1000


class Waiter:
    """The watch's lines of one kind, counted and awaited on its own condition (no polling)."""

    def __init__(self, watch) -> None:
        self.watch = watch

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.watch.events if e.get("kind") == kind]

    def count(self, kind: str) -> int:
        with self.watch._cond:
            return len(self.of(kind))

    def nth(self, kind: str, n: int, timeout: float = WAIT_S) -> dict:
        """The n-th (0-based) line of this kind, once printed."""
        with self.watch._cond:
            if not self.watch._cond.wait_for(lambda: len(self.of(kind)) > n, timeout):
                raise AssertionError(f"no {kind} #{n + 1} at the watch within {timeout} s")
            return self.of(kind)[n]


def main() -> None:
    from agent import config as cfgmod
    from agent.daemon import Daemon
    from base.labpki import make_lab_pki
    from tests.support.broker import Broker
    from tests.support.lab import Lab

    header(f"pin_edge: floor mat pin edge -> `fall` printed by the watch, {N} presses, "
           f"debounce {DEBOUNCE_S * 1000:.0f} ms, hold {HOLD_S * 1000:.0f} ms, mTLS loopback")
    total: list[float] = []
    stamped: list[float] = []  # edge -> the event's own time stamp
    after: list[float] = []  # stamped -> printed
    took = 0.0
    with temp_root("pin-edge") as root:
        pki = make_lab_pki(root / "pki", ["center"])
        with Broker(root / "broker", pki) as broker:
            lab = Lab(root, pki, broker.port)
            daemon = None
            handler = logging.FileHandler(root / "daemon.log")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            logging.getLogger().addHandler(handler)
            logging.getLogger().setLevel(logging.INFO)
            try:
                home = lab.home(HOME, gpio={"pins": "mock"},
                                mats={MAT: {"mode": "floor", "pressure": {"pin": 12}, "supervision": {"pin": 13},
                                            "debounce_s": DEBOUNCE_S, "hold_s": HOLD_S, "schedule": ALL_DAY}})
                watch = lab.watch()
                daemon = Daemon(cfgmod.load(home.config))
                daemon.start()
                wait_until(lambda: daemon.status()["link"] == "connected", 20, "the home to connect")
                mat = daemon.devices.devices.named(MAT)
                wait_until(lambda: mat.health()["inputs"] == {"pressure": "released", "supervision": "intact"}, 10,
                           "the mat to read released and its cable intact")
                lines = Waiter(watch)
                falls0, clears0 = lines.count("fall"), lines.count("mat_clear")
                rng = random.Random(1)
                started = time.monotonic()
                for i in range(WARMUP + N):
                    if i == WARMUP:
                        started = time.monotonic()
                    elif i > WARMUP and time.monotonic() - started > TIME_CAP_S:
                        say(f"(time cap {TIME_CAP_S:.0f} s reached after {len(total)} presses)")
                        break
                    pin = mat.inputs["pressure"].device.pin
                    edge = time.time()
                    pin.drive_low()
                    alarm = lines.nth("fall", falls0 + i)
                    pin.drive_high()
                    if alarm["body"].get("mat") != MAT or alarm["class"] != "alarm":
                        raise AssertionError(f"unexpected line for press {i}: {alarm}")
                    if i >= WARMUP:
                        printed = watch.arrived[alarm["id"]]
                        total.append(printed - edge)
                        stamped.append(parse_time(alarm["time"]) - edge)
                        after.append(printed - parse_time(alarm["time"]))
                    lines.nth("mat_clear", clears0 + i)
                    time.sleep(rng.uniform(0, 0.02))
                took = time.monotonic() - started
                wait_until(lambda: daemon.status()["outbox"]["classes"]["alarm"]["depth"] == 0, 20,
                           "every alarm acknowledged")
                crashes = mat.crashes
            finally:
                if daemon is not None:
                    daemon.stop()
                lab.close()
                logging.getLogger().removeHandler(handler)
                handler.close()

    beyond = [t - HOLD_S for t in total]
    driver = [t - HOLD_S for t in stamped]
    say(f"{len(total)} presses in {took:.0f} s (each: press, fall printed, release, mat_clear printed); "
        f"times in ms; mat driver crashes: {crashes}")
    result(B, "edge -> fall printed: p50", ms(total, 50), "ms", digits=1)
    result(B, "edge -> fall printed: p99", ms(total, 99), "ms", digits=1)
    result(B, "edge -> fall printed: max", ms(total, 100), "ms", digits=1)
    result(B, f"beyond hold ({HOLD_S * 1000:.0f} ms): p50", ms(beyond, 50), "ms", digits=1)
    result(B, f"beyond hold ({HOLD_S * 1000:.0f} ms): p99", ms(beyond, 99), "ms", "< 50 ms", ms(beyond, 99) < 50,
           digits=1)
    result(B, f"beyond hold ({HOLD_S * 1000:.0f} ms): max", ms(beyond, 100), "ms", digits=1)
    result(B, "driver part (event time - edge - hold): p50", ms(driver, 50), "ms", digits=1,
           note="event time is truncated to 1 ms")
    result(B, "driver part: p99", ms(driver, 99), "ms", digits=1)
    result(B, "delivery part (printed - event time): p50", ms(after, 50), "ms", digits=1,
           note="seal, fsync, uplink, broker, receiver")
    result(B, "delivery part: p99", ms(after, 99), "ms", digits=1)


if __name__ == "__main__":
    main()

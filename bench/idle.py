#!/usr/bin/env python3
"""Daemon footprint: idle memory and CPU of `trygg run`, and memory after draining a backlog.

Real processes on loopback: Mosquitto with mutual TLS, a home running `trygg run` connected to
it, and `trygg center watch --json`. Figures come from /proc of the daemon's own process:
  - VmRSS after IDLE_SETTLE_S (default 10) seconds idle and connected;
  - CPU over IDLE_CPU_S (default 30) seconds idle: (utime + stime) delta / wall time, in % of
    one core (heartbeats, housekeeping ticks, keepalives);
  - VmRSS after IDLE_DRAIN_N (default 5000) events were injected through the control socket
    (`simulate`, 16 connections at once, so the daemon seals them itself; the body is the fixed
    simulated one) with the link up, delivered and acknowledged, IDLE_AFTER_S (default 5) seconds after the outbox emptied; and the peak
    (VmHWM) reached on the way.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (env_float, env_int, header, prefill, proc_stat, result, running_home,  # noqa: E402
                     status, temp_root, wait_until)

B = "idle"
SETTLE_S = env_float("IDLE_SETTLE_S", 10.0)
CPU_S = env_float("IDLE_CPU_S", 30.0)
DRAIN_N = env_int("IDLE_DRAIN_N", 5000)
AFTER_S = env_float("IDLE_AFTER_S", 5.0)


def main() -> None:
    header(f"idle: daemon RSS after {SETTLE_S:.0f} s idle, CPU over {CPU_S:.0f} s idle, RSS after draining {DRAIN_N}")
    with temp_root("idle") as root:
        with running_home(root, "hem-idle") as (home, watch, sock):
            pid = home.proc.pid
            time.sleep(SETTLE_S)
            _, rss_idle, hwm_idle = proc_stat(pid)
            cpu0, t0 = proc_stat(pid)[0], time.monotonic()
            time.sleep(CPU_S)
            cpu1, t1 = proc_stat(pid)[0], time.monotonic()
            connected = status(sock)["link"] == "connected"
            cpu_pct = (cpu1 - cpu0) / (t1 - t0) * 100

            t_fill = time.monotonic()
            prefill(sock, "event", DRAIN_N)  # link up: it drains while being filled
            wait_until(lambda: sum(c["depth"] for c in status(sock)["outbox"]["classes"].values()) == 0,
                       120, "the outbox to empty", 0.2)
            drained_in = time.monotonic() - t_fill
            time.sleep(AFTER_S)
            _, rss_after, hwm_after = proc_stat(pid)
            shown = len(watch.events)

    mb = 1024
    result(B, f"idle RSS after {SETTLE_S:.0f} s, connected", rss_idle / mb, "MB", "<= 60 MB", rss_idle / mb <= 60,
           digits=1, note="VmRSS, MB = 1024 kB")
    result(B, f"idle CPU over {CPU_S:.0f} s", cpu_pct, "% core", digits=2,
           note="utime+stime" + ("" if connected else "; link was NOT connected at the end"))
    result(B, f"RSS {AFTER_S:.0f} s after draining {DRAIN_N} events", rss_after / mb, "MB", digits=1,
           note=f"filled+drained in {drained_in:.1f} s; receiver showed {shown}")
    result(B, "peak RSS (VmHWM) during the drain", hwm_after / mb, "MB", digits=1)
    result(B, "RSS growth after the drain vs idle", (rss_after - rss_idle) / mb, "MB", digits=1)


if __name__ == "__main__":
    main()

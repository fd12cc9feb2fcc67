#!/usr/bin/env python3
"""stall: an alarm raised while the receiver is stalled, shown how soon after it resumes.

Set-up (real processes, loopback only): Mosquitto with mutual TLS and its default queue limits
(max_queued_messages 1000), one home (`trygg run`), one receiver (`trygg center watch --json`).
The receiver is stopped with SIGSTOP (its connection stays up: the broker queues for it, then
drops), STALL_ROWS telemetry rows are committed, STALL_S/2 later a fall is raised, STALL_S/2
after that the receiver is resumed. Figures: the fall's time on the console after the resume,
the time until the whole backlog is shown and the outbox is empty, and how many messages the
home published into the silence. resend_after_s is STALL_RESEND_S (default 30, as shipped).
Sizes: STALL_ROWS (3000), STALL_S (80), STALL_RESEND_S (30).
"""

import os
import signal
import time

from _common import env_float, env_int, header, result, say, simulate, status, temp_root, wait_until

ROWS = env_int("STALL_ROWS", 3000)
STALL_S = env_float("STALL_S", 80.0)
RESEND_S = env_float("STALL_RESEND_S", 30.0)


def main() -> None:
    from base.labpki import make_lab_pki
    from tests.support.broker import Broker
    from tests.support.lab import Lab

    header(f"stall: receiver stopped {STALL_S:.0f} s with {ROWS} rows queued; a fall raised half-way")
    with temp_root("stall") as root:
        pki = make_lab_pki(root / "pki", ["center"])
        with Broker(root / "broker", pki) as broker:
            lab = Lab(root, pki, broker.port)
            try:
                home = lab.home("hem-stall", outbox={"resend_after_s": RESEND_S})
                watch = lab.watch()
                home.start()
                sock = home.dir / "trygg.sock"
                wait_until(lambda: status(sock)["link"] == "connected", 20, "the home to connect")
                os.kill(watch.proc.pid, signal.SIGSTOP)
                try:
                    before = status(sock)["published"]
                    backlog = simulate(sock, "telemetry", ROWS, kind="device_health")
                    time.sleep(STALL_S / 2)
                    [fall] = simulate(sock, "alarm", 1, kind="fall")
                    time.sleep(STALL_S / 2)
                    published = status(sock)["published"] - before
                finally:
                    os.kill(watch.proc.pid, signal.SIGCONT)
                resumed = time.time()
                watch.wait_ids([fall], timeout=120)
                fall_after = watch.arrived[fall] - resumed
                watch.wait_ids(backlog, timeout=300)
                shown_all = max(watch.arrived[i] for i in backlog) - resumed
                wait_until(lambda: sum(c["depth"] for c in status(sock)["outbox"]["classes"].values()) == 0,
                           300, "the outbox to empty")
                emptied = time.time() - resumed
            finally:
                lab.close()
    result("stall", "fall raised during the stall, shown after resume", fall_after, "s", "< 1 s", fall_after < 1.0,
           digits=2)
    result("stall", "whole backlog shown after resume", shown_all, "s", digits=2)
    result("stall", "outbox empty after resume", emptied, "s", digits=2)
    result("stall", "messages published into the stalled receiver", published, "msgs",
           note=f"{ROWS} rows waiting; max_unacked 500; broker queue 1000")
    say()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""cases: an alarm behind a backlog, shown as a case; accept -> the device's help-coming answer.

Set-up (real processes, loopback only): Mosquitto with mutual TLS, one home (`trygg run`), the
receiving service (`trygg center run`, SQLite store) and a view (`trygg center watch --json`).
1. The service is stopped; CASES_BACKLOG events, then a fall, are committed at the home; the
   service is started again. Figures: its start -> the fall's case shown in the view, and ->
   the whole backlog drained (the alarm has its own lane: the home sends alarms first, the
   broker queues them for the alarm session, the service records them on their own thread).
2. CASES_N help_coming commands to the home through `Commander` in this process, as `trygg
   center accept` sends them. Figure: send -> the device's signed answer, p50 and p99.
Sizes: CASES_BACKLOG (5000), CASES_N (200).
"""

import time

from _common import env_int, header, percentile, result, say, simulate, status, temp_root, wait_until

BACKLOG = env_int("CASES_BACKLOG", 5000)
N = env_int("CASES_N", 200)


def main() -> None:
    from base.clock import SystemClock
    from base.keys import load_public
    from base.labpki import make_lab_pki
    from center import config as cfgmod
    from center import keyring
    from center.commander import Commander
    from tests.support.broker import Broker
    from tests.support.lab import Lab, stop_process, trygg

    header(f"cases: a fall behind a {BACKLOG}-event backlog; accept -> help-coming over {N}")
    with temp_root("cases") as root:
        pki = make_lab_pki(root / "pki", ["center"])
        with Broker(root / "broker", pki) as broker:
            lab = Lab(root, pki, broker.port)
            try:
                home = lab.home("hem-bench-case", help_coming={"speaker": "none"},
                                buttons={"wrist": {"input": {"pin": 16}, "led": {"pin": 14}}})
                pub = trygg("center", "staff-key", "berit", "--config", lab.center_config).stdout.strip()
                trygg("staff", "add", "berit", "--key", pub, "--role", "nurse", "--config", home.config)
                watch = lab.watch()
                home.start()
                sock = home.dir / "trygg.sock"
                wait_until(lambda: status(sock)["link"] == "connected", 20, "the home to connect")
                stop_process(watch.proc)
                watch.proc = None
                simulate(sock, "event", BACKLOG)
                [fall] = simulate(sock, "alarm", 1, kind="fall")  # raised last, behind the backlog
                started = time.monotonic()
                restarted = lab.watch()  # the service comes back (and a view on it)
                restarted.wait_case(lambda c: fall in c.get("alarms", []), timeout=120)
                shown = time.monotonic()
                wait_until(lambda: sum(c["depth"] for c in status(sock)["outbox"]["classes"].values()) == 0, 300,
                           "the backlog to drain")
                drained = time.monotonic()
                result("cases", "receiver back -> the fall's case shown", (shown - started) * 1000, "ms",
                       note="includes the service's start and connection")
                result("cases", f"receiver back -> backlog of {BACKLOG} drained", drained - started, "s", digits=1)

                cfg = cfgmod.load(lab.center_config)
                trips = []
                with Commander(cfg, keyring.opening_keys(cfg), keyring.staff_identity(cfg, "berit"),
                               load_public(home.dir / "device.pub"), SystemClock()) as commander:
                    for _ in range(N):
                        answer = commander.send("help_coming", {"minutes": 1}, timeout=10)
                        assert answer.outcome == "done", answer.result
                        trips.append((answer.answered_at - answer.sent_at) * 1000)
                result("cases", "help_coming round trip p50", percentile(trips, 50), "ms", digits=1)
                result("cases", "help_coming round trip p99", percentile(trips, 99), "ms", "< 100",
                       percentile(trips, 99) < 100, digits=1)
            finally:
                lab.close()
    say()


if __name__ == "__main__":
    main()

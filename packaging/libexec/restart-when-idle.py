#!/usr/lib/trygg/bin/python3
"""Restart the Trygg daemon into a newly installed version, but only while no alarm is waiting.

An upgrade replaces the files under a running daemon; it should run the new version soon. But a
restart while an alarm is on its way to the night staff delays that alarm by the restart (nothing
is lost: the outbox keeps it), so this asks the daemon first (`trygg status --json`, the CLI's
contract) and restarts only when it reports no alarm waiting for the center's acknowledgement.
If it cannot tell (the daemon answers with an error or not at all while its unit is active), it
does not restart: fail closed, ask again later.

Exit: 0 restarted (or nothing to restart), 75 still waiting at the deadline, 2 bad usage.
Usage: restart-when-idle [--config PATH] [--wait SECONDS] [--every SECONDS] [--dry-run]
"""

import argparse
import json
import subprocess
import sys
import time

TRYGG = "/usr/bin/trygg"
NOT_RUNNING = 3  # agent/cli.py: "3 when the daemon is not running"
RESTART = ["systemctl", "try-restart", "trygg.service"]  # try-: a stopped daemon stays stopped


def decide(config: str, trygg: str = TRYGG) -> tuple[bool, str]:
    """(restart now?, why) from what the daemon says about itself."""
    try:
        proc = subprocess.run([trygg, "status", "--json", "--config", config], capture_output=True,
                              text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        return False, "the daemon did not answer within 60 s"
    if proc.returncode == NOT_RUNNING:
        return True, "the daemon is not running"
    if proc.returncode != 0:
        return False, f"cannot ask the daemon: {proc.stderr.strip() or f'exit {proc.returncode}'}"
    try:
        status = json.loads(proc.stdout)
        waiting = int(status["unacked_alarms"]["depth"])
        queued = int(status["outbox"]["classes"].get("alarm", {}).get("depth", 0))
    except (ValueError, KeyError, TypeError, AttributeError):
        return False, "the daemon's status could not be read"
    if waiting or queued:
        oldest = status["unacked_alarms"].get("oldest_age_s")
        age = f", oldest {oldest:.0f} s" if isinstance(oldest, (int, float)) else ""
        return False, f"{max(waiting, queued)} alarm(s) waiting for the center's acknowledgement{age}"
    return True, "no alarm waiting"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="restart-when-idle", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="/etc/trygg/trygg.toml")
    parser.add_argument("--wait", type=float, default=0, help="Keep asking this many seconds (default: ask once).")
    parser.add_argument("--every", type=float, default=30, help="Seconds between questions.")
    parser.add_argument("--dry-run", action="store_true", help="Say what would be done; restart nothing.")
    parser.add_argument("--trygg", default=TRYGG, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.wait
    while True:
        restart, why = decide(args.config, args.trygg)
        if restart:
            print(f"restart: {why}", flush=True)
            if not args.dry_run:
                done = subprocess.run(RESTART, check=False)
                return 0 if done.returncode == 0 else 1
            return 0
        print(f"wait: {why}", flush=True)
        if time.monotonic() + args.every > deadline:
            print("not restarted: the new version runs from the daemon's next restart", flush=True)
            return 75
        time.sleep(args.every)


if __name__ == "__main__":
    sys.exit(main())

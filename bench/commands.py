#!/usr/bin/env python3
"""Staff commands: the unlock round trip, and what refusing a flood of hostile commands costs.

Real processes on loopback (bench/_common.running_lab): Mosquitto with mutual TLS, a home running
`trygg run`, `trygg center watch --json`, and a nurse enrolled through the CLI (`trygg center
staff-key`, `trygg staff add`). Unlock and lock alternate, so every command moves the lock.

1. Round trip, command sent -> the device's signed result received, two ways:
   (a) the real CLI, `trygg center unlock|lock HOME --as STAFF --json`, COMMANDS_CLI_N (50) times:
       its own "round_trip_ms" (sent -> answered inside the CLI), and the whole invocation's wall
       time split into launch -> sent (interpreter, imports, keys, TLS connect, retained status)
       and answered -> exit;
   (b) in-process, one `center.commander.Commander` session, COMMANDS_N (200) commands, waiting
       for the device's new challenge between commands (not counted). Where the time goes comes
       from the stamps the daemon leaves: the audit entry of each command (full resolution, taken
       after judging and acting) and the `time` of its command_result event (ms resolution,
       taken just before sealing), both on this machine's clock.
2. Refusing hostile input: a flood publisher in its own process (bench/_flood.py: raw paho, the "center"
   TLS identity, which the broker lets publish to any home's down/cmd) sends, as fast as its
   socket takes them, for COMMANDS_FLOOD_S (10) s: random bytes, random bytes behind a valid
   envelope header for the device key (so the daemon runs the HPKE decapsulation before the
   AEAD fails), and validly sealed commands signed by an unenrolled key. Meanwhile alarms are
   simulated at COMMANDS_ALARM_HZ (20/s) on the control socket and timed to the receiver's
   line as in latency.py, and a Commander sends one real unlock/lock about every second.
   A baseline run does the same without the flood. Refused and dropped per second come from the
   daemon's own counters (the "commands" field of `trygg status --json`, read over the control
   socket) at the flood's start and end; CPU from /proc of the daemon. After each flood a ping
   checks that commands (QoS 1, like the center's acks) still reach the home; when they do not,
   the daemon is restarted (a new connection is a new broker session) so the next run is clean.
"""

import json
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (cpu_seconds, env_float, env_int, header, percentile, result, running_lab, say,  # noqa: E402
                     simulate, status, temp_root, wait_until)

B = "commands"
CLI_N = env_int("COMMANDS_CLI_N", 50)
N = env_int("COMMANDS_N", 200)
FLOOD_S = env_float("COMMANDS_FLOOD_S", 10.0)
ALARM_HZ = env_float("COMMANDS_ALARM_HZ", 20.0)
HOME_ID = "hem-cmd"
STAFF = "berit"
LOCK = {"lock": "front-door"}
RECOVER_S = env_float("COMMANDS_RECOVER_S", 45.0)  # bound on waiting for re-sent alarms to be acknowledged
ACK_GRACE_S = 2.0  # after the flood: time for the center's acks to reach the device
ARRIVE_S = 10.0  # bound on waiting for a run's alarms at the receiver
FLOOD = Path(__file__).resolve().parent / "_flood.py"


def ms(values: list[float], p: float) -> float | None:
    return percentile(values, p) * 1000 if values else None


def parse_time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# -- part 1: round trips ------------------------------------------------------------------
def commander(setup):
    from center import config as center_config
    from base.clock import SystemClock
    from base.keys import load_public
    from center import keyring
    from center.commander import Commander

    cfg = center_config.load(setup.lab.center_config)
    return Commander(cfg, keyring.opening_keys(cfg), keyring.staff_identity(cfg, STAFF),
                     load_public(cfg.center.homes_dir / f"{HOME_ID}.pub"), SystemClock())


def next_action(sock: Path) -> str:
    return "lock" if status(sock)["locks"]["front-door"] == "unlocked" else "unlock"


def cli_round_trips(setup) -> dict:
    from tests.support.lab import trygg

    rt, wall, launch, leave, bad = [], [], [], [], []
    action = next_action(setup.sock)
    for _ in range(CLI_N):
        t0 = time.time()
        proc = trygg("center", action, HOME_ID, "--as", STAFF, "--json", "--timeout", 10,
                     "--config", setup.lab.center_config, check=False, timeout=30)
        t1 = time.time()
        answer = json.loads(proc.stdout) if proc.stdout.strip() else {}
        if proc.returncode != 0 or answer.get("outcome") != "done":
            bad.append(answer.get("reason") or proc.stderr.strip()[-200:])
            continue
        rt.append(answer["round_trip_ms"] / 1000)
        wall.append(t1 - t0)
        launch.append(answer["sent"] - t0)
        leave.append(t1 - answer["answered"])
        action = "lock" if action == "unlock" else "unlock"
    return {"rt": rt, "wall": wall, "launch": launch, "leave": leave, "bad": bad}


def session_round_trips(setup) -> dict:
    from center.commander import NoAnswer

    answers, bad, waits = [], [], []
    action = next_action(setup.sock)
    with commander(setup) as c:
        for _ in range(N):
            old = c.status.challenge
            try:
                answer = c.send(action, LOCK, timeout=10)
                if answer.outcome != "done":
                    bad.append(answer.result.get("reason"))
                else:
                    answers.append(answer)
                    action = "lock" if action == "unlock" else "unlock"
                t = time.monotonic()
                c.wait_for_new_challenge(old, timeout=5)
                waits.append(time.monotonic() - t)
            except NoAnswer as exc:
                bad.append(str(exc))
    return {"answers": answers, "bad": bad, "waits": waits}


def where_time_goes(setup, answers) -> dict[str, list[float]]:
    """Split each round trip by the daemon's stamps: its audit entry and its result event's time."""
    audited = {e["detail"]["command"]: e["time"] for e in setup.home.audit() if e["kind"] == "command"}
    ids = {a.command.id for a in answers}
    wait_until(lambda: len(result_events(setup.watch, ids)) == len(ids), 20, "the command results at the receiver")
    stamped = result_events(setup.watch, ids)
    parts: dict[str, list[float]] = {"in": [], "mid": [], "out": []}
    for a in answers:
        cid = a.command.id
        if cid in audited and cid in stamped:
            parts["in"].append(audited[cid] - a.sent_at)
            parts["mid"].append(stamped[cid] - audited[cid])
            parts["out"].append(a.answered_at - stamped[cid])
    return parts


def result_events(watch, ids: set[str]) -> dict[str, float]:
    with watch._cond:
        return {e["body"]["command"]: parse_time(e["time"]) for e in watch.events
                if e.get("kind") == "command_result" and e["body"].get("command") in ids}


# -- part 2: alarms under a flood ----------------------------------------------------------
def alarms(setup, seconds: float, answered: dict[str, float]) -> dict[str, float]:
    """Simulate alarms at ALARM_HZ for `seconds`; id -> wall time sent (no catch-up bursts).

    `answered` gets id -> wall time the control socket answered (sealed and committed).
    """
    sent: dict[str, float] = {}
    period, end = 1 / ALARM_HZ, time.time() + seconds
    next_at = time.time()
    while next_at < end:
        delay = next_at - time.time()
        if delay > 0:
            time.sleep(delay)
        t0 = time.time()
        [alarm_id] = simulate(setup.sock, "alarm", 1, kind="fall")
        sent[alarm_id], answered[alarm_id] = t0, time.time()
        next_at = max(next_at + period, time.time())
    return sent


def legit_unlocks(setup, stop: threading.Event, out: dict) -> None:
    """One real command about every second while the flood runs: does it still get through?"""
    from center.commander import NoAnswer

    action = out["action"]
    try:
        with commander(setup) as c:
            while not stop.is_set():
                old = c.status.challenge
                out["tried"] += 1
                try:
                    answer = c.send(action, LOCK, timeout=3)
                    out["rt"].append(answer.answered_at - answer.sent_at)
                    action = "lock" if action == "unlock" else "unlock"
                    c.wait_for_new_challenge(old, timeout=5)
                except NoAnswer:
                    out["lost"] += 1
                stop.wait(1.0)
    except NoAnswer as exc:
        out["error"] = str(exc)


def window_size(setup) -> int:
    from agent import config as cfgmod

    return cfgmod.load(setup.home.config).uplink.inflight


def sample_inflight(sock: Path, stop: threading.Event, into: list[int]) -> None:
    while not stop.wait(0.25):
        into.append(status(sock)["in_flight"])


def quiet_counters(sock: Path, quiet_s: float = 1.0, limit_s: float = 30.0) -> dict:
    """The command counters once they stop moving: what was still queued after the flood (in the
    daemon's queue, the sockets, the broker) is judged or dropped by then."""
    started, last, since = time.monotonic(), None, time.monotonic()
    while time.monotonic() - started < limit_s:
        now = status(sock)["commands"]
        if (now["refused"], now["dropped"]) != last:
            last, since = (now["refused"], now["dropped"]), time.monotonic()
        elif time.monotonic() - since > quiet_s:
            return now
        time.sleep(0.1)
    return status(sock)["commands"]


def run_phase(setup, qos: int | None) -> dict:
    """One alarm run; with qos set, under a flood of that QoS. Counters and CPU over the window."""
    pid, sock = setup.home.proc.pid, setup.sock
    child = None
    if qos is not None:
        cert, key = setup.pki.client("center")
        child = subprocess.Popen([sys.executable, str(FLOOD), str(setup.broker.port), str(setup.pki.ca),
                                  str(cert), str(key), str(setup.home.dir / "device.pub"), HOME_ID, str(qos),
                                  str(FLOOD_S)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        if child:
            assert child.stdout.readline().strip() == "ready", "the flood publisher did not connect"
        legit = {"action": next_action(sock), "tried": 0, "lost": 0, "rt": []}
        stop = threading.Event()
        worker = threading.Thread(target=legit_unlocks, args=(setup, stop, legit), daemon=True)
        worker.start()
        inflight: list[int] = []  # the uplink's publishes awaiting the broker's PUBACK, 4 times a second
        sampler = threading.Thread(target=sample_inflight, args=(sock, stop, inflight), daemon=True)
        sampler.start()
        c0, cpu0, t0, log0 = status(sock)["commands"], cpu_seconds(pid), time.monotonic(), log_size(setup)
        broker_cpu0 = cpu_seconds(setup.broker.pid)
        if child:
            child.stdin.write("go\n")
            child.stdin.flush()
        answered: dict[str, float] = {}
        sent = alarms(setup, FLOOD_S, answered)
        c1, cpu1, t1 = status(sock)["commands"], cpu_seconds(pid), time.monotonic()
        broker_cpu1 = cpu_seconds(setup.broker.pid)
        stop.set()
        flood_stats = json.loads(child.stdout.readline()) if child else None
        if child:
            child.wait(30)
        worker.join(15)
        sampler.join(5)
        c2 = quiet_counters(sock)
        try:
            wait_until(lambda: all(i in setup.watch.arrived for i in sent), ARRIVE_S, "every alarm at the receiver",
                       0.05)
        except AssertionError:
            pass  # reported as missing
        missing = [i for i in sent if i not in setup.watch.arrived]
        if missing:
            say(f"    !! {len(missing)} alarms not at the receiver {ARRIVE_S:.0f} s after the run, e.g. {missing[:3]}")
        # Each alarm reached the receiver; is it acknowledged on the device too? (the ack travels
        # down to the home through the same broker session as the flood)
        time.sleep(max(0.0, t1 + ACK_GRACE_S - time.monotonic()))
        unacked = still_in_outbox(setup, sent)
        pinged = answers_ping(setup)
        stuck = min(status(sock)["in_flight"] for _ in range(3) if not time.sleep(0.2))  # PUBACKs never came
        wedged = child is not None and (not pinged or stuck > 0)
        if wedged:  # a new connection is a new broker session: restart the daemon, as a watchdog would
            setup.home.stop()
            setup.home.start()
            wait_until(lambda: status(sock)["link"] == "connected", 20, "the home to reconnect")
    finally:
        if child and child.poll() is None:
            child.kill()
            child.wait()
    window = t1 - t0
    arrived = {i: setup.watch.arrived[i] for i in sent if i in setup.watch.arrived}
    with setup.watch._cond:
        stamped = {e["id"]: parse_time(e["time"]) for e in setup.watch.events if e.get("id") in arrived}
    judged = {k: c1[k] - c0[k] for k in ("refused", "dropped")}
    return {
        "lat": [arrived[i] - sent[i] for i in arrived], "n": len(sent), "missing": len(missing),
        "parts": {"stamp": [stamped[i] - sent[i] for i in stamped],  # request -> the daemon stamps the event
                  "commit": [answered[i] - stamped[i] for i in stamped],  # -> sealed, committed, answered
                  "deliver": [arrived[i] - stamped[i] for i in stamped]},  # stamped -> the receiver's line
        "refused_s": judged["refused"] / window, "dropped_s": judged["dropped"] / window,
        "after": (c2["refused"] + c2["dropped"]) - (c1["refused"] + c1["dropped"]),
        "total": (c2["refused"] + c2["dropped"]) - (c0["refused"] + c0["dropped"]),
        "cpu": (cpu1 - cpu0) / window * 100, "broker_cpu": (broker_cpu1 - broker_cpu0) / window * 100,
        "inflight": max(inflight, default=0), "uplink_window": window_size(setup),
        "flood": flood_stats, "legit": legit, "unacked": unacked, "wedged": wedged, "pinged": pinged, "stuck": stuck,
        "log_bytes": log_size(setup) - log0,
    }


def answers_ping(setup) -> bool:
    """Does a signed command still reach the home and its answer come back? (QoS 1 both ways)"""
    from center.commander import NoAnswer

    try:
        with commander(setup) as c:
            return c.send("ping", {}, timeout=3).outcome == "done"
    except NoAnswer:
        return False


def still_in_outbox(setup, ids) -> int:
    """How many of these events are still in the home's outbox (not acknowledged by the center).

    Read-only, straight from the outbox file (WAL mode lets a reader in beside the daemon):
    the status op only counts rows, and earlier phases may have left alarms of their own.
    """
    db = sqlite3.connect(f"file:{setup.home.dir / 'outbox.db'}?mode=ro", uri=True, timeout=10)
    try:
        present = {r[0] for r in db.execute("SELECT id FROM outbox WHERE prio = 0")}
    finally:
        db.close()
    return len(present & set(ids))


def log_size(setup) -> int:
    return setup.home.log.stat().st_size


def report_phase(name: str, p: dict) -> None:
    lat = p["lat"]
    note = f"{p['n']} alarms at {ALARM_HZ:.0f}/s"
    result(B, f"{name}: alarm p50", ms(lat, 50), "ms", digits=1, note=note)
    result(B, f"{name}: alarm p99", ms(lat, 99), "ms", "< 50 ms", ms(lat, 99) < 50, digits=1,
           note=f"max {ms(lat, 100):.1f} ms")
    pa = p["parts"]
    shown = ", ".join(f"{what} {ms(pa[key], 50):.1f} / {ms(pa[key], 99):.1f}" for key, what in (
        ("stamp", "request -> event stamped"), ("commit", "stamped -> committed answer"),
        ("deliver", "stamped -> receiver line")))
    say(f"    p50 / p99 of the parts (ms): {shown}  (stamp: 1 ms resolution)")
    say(f"    the uplink's publishes awaiting the broker's PUBACK: at most {p['inflight']} "
        f"(its window, uplink.inflight, is {p['uplink_window']})")
    result(B, f"{name}: daemon CPU", p["cpu"], "% core", digits=0, note=f"broker {p['broker_cpu']:.0f} % core")
    legit = p["legit"]
    rt = f", p50 {ms(legit['rt'], 50):.0f} ms max {ms(legit['rt'], 100):.0f} ms" if legit["rt"] else ""
    say(f"    real unlock/lock during the run: {legit['tried'] - legit['lost']} of {legit['tried']} answered{rt}"
        + (f"; {legit['error']}" if legit.get("error") else ""))
    if p["flood"] is None:
        return
    f = p["flood"]
    result(B, f"{name}: refused", p["refused_s"], "msg/s", digits=0,
           note=f"flood sent {f['sent'] / f['elapsed']:,.0f} msg/s, {f['sent']:,} in all")
    result(B, f"{name}: dropped (command queue full)", p["dropped_s"], "msg/s", digits=0)
    say(f"    after the flood stopped: {p['after']:,} more judged or dropped; "
        f"{f['sent'] - p['total']:,} of {f['sent']:,} never reached the daemon's counters (lost at the broker)")
    say(f"    {p['unacked']} of its {p['n']} alarms reached the receiver but were still unacknowledged on the device "
        f"{ACK_GRACE_S:.0f} s after the flood (their acks lost)")
    say(f"    after the flood: a ping {'was answered' if p['pinged'] else 'got NO answer'}; "
        f"{p['stuck']} of the uplink's publishes still waited for a PUBACK")
    if p["wedged"]:
        say("    !! WEDGED: the link stayed up but the broker session to the home no longer worked (no QoS 1"
            " delivery to it: commands and acks; or PUBACKs lost, holding the uplink's window for good)."
            " The daemon was restarted (a new session) to go on")
    dis = f["disconnects"]
    say(f"    flood publisher used {f['cpu'] / f['elapsed'] * 100:.0f} % of a core"
        + (f", was disconnected by the broker {len(dis)} times ({dis[0]}) and reconnected" if dis else "")
        + f"; the daemon's log grew {p['log_bytes'] / 1e6:.1f} MB")


def main() -> None:
    header(f"commands: unlock round trip ({CLI_N} via the CLI, {N} in one session) and "
           f"{FLOOD_S:.0f} s floods of hostile commands, mTLS loopback")
    with temp_root("commands") as root:
        with running_lab(root, HOME_ID) as setup:
            setup.lab.enroll(setup.home, STAFF, "nurse")  # trygg center staff-key, trygg staff add
            started = time.monotonic()
            cli = cli_round_trips(setup)
            cli_took = time.monotonic() - started
            started = time.monotonic()
            sess = session_round_trips(setup)
            sess_took = time.monotonic() - started
            parts = where_time_goes(setup, sess["answers"])
            phases = {"baseline (no flood)": run_phase(setup, None),
                      "QoS 0 flood": run_phase(setup, 0),
                      "QoS 1 flood": run_phase(setup, 1)}
            # alarms whose ack was lost wait for outbox.resend_after_s, then go again
            t_end, recovered = time.monotonic(), None
            try:
                wait_until(lambda: status(setup.sock)["outbox"]["classes"]["alarm"]["depth"] == 0, RECOVER_S,
                           "every alarm acknowledged", 0.2)
                recovered = time.monotonic() - t_end + ACK_GRACE_S
            except AssertionError:
                pass
            resent = setup.home.log.read_text().count("re-sending")

    say(f"\n(a) through the CLI: {len(cli['rt'])} of {CLI_N} confirmed in {cli_took:.0f} s"
        + (f"; not confirmed: {cli['bad'][:3]}" if cli["bad"] else ""))
    rt = cli["rt"]
    for p in (50, 95):
        result(B, f"CLI unlock round trip (sent -> answered): p{p}", ms(rt, p), "ms", digits=1)
    result(B, "CLI unlock round trip: p99", ms(rt, 99), "ms", "< 100 ms", bool(rt) and ms(rt, 99) < 100, digits=1)
    result(B, "CLI unlock round trip: max", ms(rt, 100), "ms", digits=1)
    result(B, "CLI invocation wall time: p50", ms(cli["wall"], 50), "ms", digits=0,
           note=f"p99 {ms(cli['wall'], 99):.0f} ms")
    result(B, "CLI launch -> command sent: p50", ms(cli["launch"], 50), "ms", digits=0,
           note="interpreter, imports, keys, TLS connect, retained status")
    result(B, "CLI answered -> process exited: p50", ms(cli["leave"], 50), "ms", digits=0)

    answers = sess["answers"]
    rt = [a.answered_at - a.sent_at for a in answers]
    say(f"\n(b) one Commander session: {len(rt)} of {N} confirmed in {sess_took:.0f} s"
        + (f"; not confirmed: {sess['bad'][:3]}" if sess["bad"] else "")
        + f"; new challenge seen {ms(sess['waits'], 50):.1f} ms (p50) after the result")
    for p in (50, 95):
        result(B, f"session unlock round trip: p{p}", ms(rt, p), "ms", digits=1)
    result(B, "session unlock round trip: p99", ms(rt, 99), "ms", "< 100 ms", bool(rt) and ms(rt, 99) < 100, digits=1)
    result(B, "session unlock round trip: max", ms(rt, 100), "ms", digits=1)
    say(f"    where it goes (p50 / p99 / mean of each part, {len(parts['in'])} commands):")
    for key, what in (("in", "sent -> audited (broker, queue, open, verify, replay fsync, act)"),
                      ("mid", "audited -> result stamped (audit commit fsync)"),
                      ("out", "stamped -> answered (seal, outbox fsync, publish, broker, open)")):
        mean = sum(parts[key]) / len(parts[key]) * 1000 if parts[key] else float("nan")
        say(f"      {what:<68} {ms(parts[key], 50):6.1f} / {ms(parts[key], 99):6.1f} / {mean:6.1f} ms")
    say("      (the result's stamp has 1 ms resolution)")

    say("\n(2) alarms while refusing a flood on down/cmd")
    for name, p in phases.items():
        report_phase(name, p)
    say(f"    every alarm acknowledged on the device "
        + (f"{recovered:.0f} s after the last flood ended" if recovered is not None
           else f"NOT within {RECOVER_S:.0f} s of the last flood") + f"; the uplink logged {resent} re-send rounds")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""`make demo`: a simulated home sends to a local Mosquitto (mutual TLS), a night-staff console receives.

Everything is throwaway and lives in ./demo: a lab CA and certificates, the center's and the
home's keys, the broker's files. The story it plays:
  1. the home starts with `trygg run --simulate`: every driver (mats, door lock, medicine
     cabinet, dispenser, alarm button, motion) on gpiozero mock pins, playing the built-in
     compressed night (drivers/scenarios/night.txt, 22:00-07:30 in about 40 s): a missed dose,
     the door opened at 03:00, a fall on the floor mat, a bed exit, a help button press;
  2. after the fall, night staff member anna (enrolled on the device with her own key) tries to
     unlock the door with a signed command, and the device refuses: the fall is the scenario's,
     and a simulated alarm (like `trygg simulate alarm --kind test`) never opens the door to night
     staff - only a real driver's alarm does, and nothing in a simulated home is real. Berit, the
     nurse on call, unlocks it instead (the default rule lets a nurse unlock always); the lock
     confirms its bolt moved, locks itself again and records the visit;
  2b. anna looks in on the resident through the synthetic camera (the simulation's demo grant):
     the picture is blurred on the device, sealed to her key and written to demo/lookin.jpg;
  3. the mobile link dies (the broker is stopped) while the home keeps recording;
  4. the link comes back: the backlog drains, alarms first, and nothing is lost;
  5. `trygg status` shows the outbox empty and nothing dropped; `trygg audit` shows and
     verifies the hash-chained audit trail.
Set DEMO_SECONDS=0 to keep it running until Ctrl-C afterwards.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from base.labpki import make_lab_pki  # noqa: E402
from tests.support.broker import Broker  # noqa: E402

WORK = ROOT / "demo"
HOME = "hem-0042"
TRYGG = [sys.executable, "-m", "agent"]  # the venv's trygg, whatever PATH says


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def trygg(*args: str, check: bool = True) -> str:
    result = subprocess.run([*TRYGG, *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        sys.exit(f"trygg {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout.strip()


def main() -> None:
    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(mode=0o700)
    pki = make_lab_pki(WORK / "pki", ["center", HOME])
    broker = Broker(WORK / "broker", pki)
    broker.start()
    addr = f"127.0.0.1:{broker.port}"
    say(f"local Mosquitto with mutual TLS on {addr} (lab CA in demo/pki - throwaway)")
    c_cert, c_key = pki.client("center")
    h_cert, h_key = pki.client(HOME)
    print(trygg("center", "init", "--dir", str(WORK / "center"), "--broker", addr, "--ca", str(pki.ca),
                "--cert", str(c_cert), "--key", str(c_key)))
    print(trygg("init", "--home", HOME, "--broker", addr, "--ca", str(pki.ca), "--cert", str(h_cert),
                "--key", str(h_key), "--center-key", str(WORK / "center" / "center.pub"), "--dir",
                str(WORK / "home"), "--simulate"))
    center_cfg, home_cfg = str(WORK / "center" / "center.toml"), str(WORK / "home" / "trygg.toml")
    print(trygg("center", "add-home", str(WORK / "home" / "device.pub"), "--config", center_cfg))
    # Demo pace: a quick re-send after an outage.
    with open(home_cfg, "a") as f:
        f.write("\n[uplink]\nbackoff_min_s = 0.5\nbackoff_max_s = 2.0\nheartbeat_s = 5\n")

    say("staff keys: trygg center staff-key NAME; on the device: trygg staff add NAME --role ROLE")
    for name, role in (("anna", "night-staff"), ("berit", "nurse")):
        pub = trygg("center", "staff-key", name, "--config", center_cfg).strip()
        print(trygg("staff", "add", name, "--key", pub, "--role", role, "--config", home_cfg))

    procs = []
    try:
        say("the receiving service (trygg center run; its log in demo/center.log)")
        center_log = open(WORK / "center.log", "w")
        procs.append(subprocess.Popen([*TRYGG, "center", "run", "--config", center_cfg], stdout=center_log,
                                      stderr=center_log))
        say("night-staff console (trygg center watch) - cases, homes and events as they are recorded")
        procs.append(subprocess.Popen([*TRYGG, "center", "watch", "--config", center_cfg]))
        web = os.environ.get("DEMO_WEB", "127.0.0.1:8080")
        shown_at = web.replace("127.0.0.1", "localhost")  # a passkey's RP id is a host name, not an address
        say(f"the web console (trygg center web) on http://{shown_at}/ - in a browser: create your key, enroll "
            f"it: trygg center add-staff NAME.pub --config {center_cfg}, then give yourself a passkey code: "
            f"trygg center passkey-code NAME --config {center_cfg} (DEMO_SECONDS=0 keeps it running)")
        procs.append(subprocess.Popen([*TRYGG, "center", "web", "--listen", web, "--config", center_cfg],
                                      stdout=center_log, stderr=center_log))
        time.sleep(2.0)
        home_log = open(WORK / "home.log", "w")
        say("the home: trygg run --simulate (a compressed night, 22:00-07:30 at 900x; log in demo/home.log)")
        procs.append(subprocess.Popen([*TRYGG, "run", "--simulate", "--config", home_cfg], stdout=home_log, stderr=home_log))
        time.sleep(30)  # 22:00 + 30 s x 900 = 05:30: past the fall at 04:11
        say("night staff: trygg center unlock hem-0042 --as anna (refused: the fall was simulated, so no alarm is open)")
        refused = subprocess.run([*TRYGG, "center", "unlock", HOME, "--as", "anna", "--config", center_cfg],
                                 capture_output=True, text=True)
        print((refused.stdout + refused.stderr).strip())
        if refused.returncode != 4:  # 4 = refused by the device; anything else means the demo is wrong
            sys.exit(f"expected the device to refuse anna's unlock (exit 4), got exit {refused.returncode}")
        say("trygg center cases --open: the fall is an alarm case")
        opened = json.loads(trygg("center", "cases", "--open", "--json", "--config", center_cfg))
        if not opened:
            sys.exit("expected the simulated fall to open a case")
        case = opened[0]["id"]
        print(trygg("center", "cases", "--open", "--config", center_cfg))
        say(f"anna takes it: trygg center accept {case[-8:]} --as anna (the wrist button's light: help is coming)")
        print(trygg("center", "accept", case[-8:], "--as", "anna", "--config", center_cfg, check=False))
        say("nurse: trygg center unlock hem-0042 --as berit (allowed: a nurse may always unlock)")
        print(trygg("center", "unlock", HOME, "--as", "berit", "--config", center_cfg))
        say("anna: on site, then closes the case with an outcome")
        print(trygg("center", "on-site", case[-8:], "--as", "anna", "--config", center_cfg))
        print(trygg("center", "close", case[-8:], "--as", "anna", "--outcome", "helped", "--note",
                    "låg på golvet, ingen skada", "--config", center_cfg))
        print(trygg("center", "case", case[-8:], "--config", center_cfg))
        say("night staff: trygg center lookin hem-0042 --as anna --out demo/lookin.jpg (blurred, sealed to anna)")
        print(trygg("center", "lookin", HOME, "--as", "anna", "--out", str(WORK / "lookin.jpg"), "--config", center_cfg))
        time.sleep(2)
        say("the mobile link dies for 8 s (broker stopped); the home keeps recording to its outbox")
        broker.stop()
        time.sleep(3)
        print("committed during the outage:", trygg("simulate", "alarm", "--kind", "help", "--config", home_cfg))
        time.sleep(2)
        print(trygg("status", "--config", home_cfg, check=False))
        time.sleep(3)
        say("link back: the backlog drains, alarms first")
        broker.start()
        time.sleep(6)
        say("trygg status")
        print(trygg("status", "--config", home_cfg, check=False))
        say("trygg audit show --since 10m; trygg audit verify")
        print(trygg("audit", "show", "--since", "10m", "--config", home_cfg))
        print(trygg("audit", "verify", "--config", home_cfg))
        seconds = float(os.environ.get("DEMO_SECONDS", "10"))
        if seconds > 0:
            time.sleep(seconds)
        else:
            say("running until Ctrl-C")
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        broker.close()
        say("demo finished; files are in ./demo (throwaway)")


if __name__ == "__main__":
    main()

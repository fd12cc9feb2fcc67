"""A home whose machine has no working GPIO pin factory (a PC, a Pi 5 without lgpio, a service
user outside the gpio group): each pin driver reports one clear fault naming the fix and its pin,
logs one line per retry without a traceback, and backs off; staff see the fault in the device's
status. Real gpiozero in a child process, told to use a pin factory that does not exist
(GPIOZERO_PIN_FACTORY), exactly as it would fail on such a machine.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESTART = (0.05, 0.4)
RUN_S = 1.6  # retries at about 0, 0.05, 0.15, 0.35, 0.75, 1.15, 1.55 s

HOME = r"""
import json, logging, sys, time
logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="LOG|%(name)s|%(levelname)s|%(message)s")
from agent.config import DeviceConfig
from agent.devices import HomeDevices
from base.clock import SystemClock
from tests.support.homekit import BROKER, Recorder
cfg = DeviceConfig.model_validate({
    "home": {"id": "h1"}, "broker": dict(BROKER),
    "gpio": {"pins": "board", "restart_min_s": float(sys.argv[1]), "restart_max_s": float(sys.argv[2])},
    "locks": {}, "mats": {"bed": {"mode": "bed", "pressure": {"pin": 5}, "supervision": {"pin": 6}}},
    "buttons": {"wrist": {"input": {"pin": 16}}},
})
events = Recorder()
home = HomeDevices(cfg, events, SystemClock(), None, inject=None)
home.start()
time.sleep(float(sys.argv[3]))
health = home.health()
home.stop()
print(json.dumps({"health": health, "events": [{"cls": e.cls, "kind": e.kind, "body": e.body} for e in events.events]}))
"""


def run_home(factory: str) -> tuple[dict, list[str], str]:
    env = {**os.environ, "GPIOZERO_PIN_FACTORY": factory, "PYTHONPATH": str(ROOT)}
    args = [str(RESTART[0]), str(RESTART[1]), str(RUN_S)]
    out = subprocess.run([sys.executable, "-c", HOME, *args], check=False, capture_output=True, text=True, cwd=ROOT,
                         env=env, timeout=60)
    assert out.returncode == 0, out.stderr[-3000:]
    logs = [line for line in out.stderr.splitlines() if line.startswith("LOG|")]
    return json.loads(out.stdout), logs, out.stderr


def test_no_pin_factory_gives_one_clear_line_per_driver_per_retry_and_backs_off():
    result, logs, stderr = run_home("no-such-factory")
    assert "Traceback" not in stderr, stderr[-3000:]
    for name, kind, pin, verb in (("bed", "mat", 5, "read"), ("wrist", "button", 16, "read")):
        own = [line for line in logs if line.startswith(f"LOG|drivers.{kind}.{name}|")]
        health = result["health"][name]
        assert health["crashes"] >= 4, f"{kind}:{name} was not retried: {health}"
        assert len(own) == health["crashes"], "one line per attempt, got:\n" + "\n".join(own)
        for line in own:
            assert "no GPIO pin factory" in line and "python3-lgpio" in line and f"cannot {verb} pin {pin}" in line
            assert "no-such-factory" in line, "gpiozero's own reason is kept"
        waits = [float(re.search(r"trying again in ([0-9.]+) s", line).group(1)) for line in own]
        assert waits[:4] == [0.05, 0.1, 0.2, 0.4], waits
        assert max(waits) == RESTART[1], "the backoff stops at restart_max_s"
        # besides its own lines, at most the daemon's one note at start-up names the driver
        others = [line for line in logs if f"{kind}:{name}" in line and line not in own]
        assert len(others) <= 1, others
        assert health["running"] is False and "no GPIO pin factory" in health["error"]


def test_staff_are_told_each_pin_fault_once_and_the_rest_of_the_home_runs():
    result, _, _ = run_home("no-such-factory")
    faults = [e for e in result["events"] if e["kind"] == "fault"]
    assert sorted(e["body"]["component"] for e in faults) == ["button:wrist", "mat:bed"]
    for fault in faults:
        assert fault["cls"] == "event"
        assert fault["body"]["detail"].startswith("no GPIO pin factory: install python3-lgpio")
    health = result["health"]["device"]  # the device-health driver needs no pins
    assert health["running"] is True and health["error"] is None
    assert any(e["kind"] == "device_health" for e in result["events"])


def test_a_working_pin_factory_opens_the_same_home():
    """The same home on gpiozero's mock factory, chosen the same way: every driver opens and runs
    (the mat still says its unwired supervision loop is open: that is the mat's own fault)."""
    result, logs, stderr = run_home("mock")
    assert not [e for e in result["events"] if "pin factory" in e["body"].get("detail", "")], result["events"]
    assert all(h["running"] and h["crashes"] == 0 for h in result["health"].values()), result["health"]
    assert "Traceback" not in stderr and not [line for line in logs if "|ERROR|" in line]

"""A test alarm must not open the door (issue 13).

Night staff may unlock where the lock's rule says "alarm" only after a real driver's alarm. An
alarm from `trygg simulate` (a test alarm at installation) or from the simulated world of
`trygg run --simulate` reaches the night staff like any other, but authorizes nothing. And
`trygg simulate` sends only a kind a driver really sends as that class, or `test`.

Real parts on loopback: the lab's Mosquitto, `trygg run` and `trygg center unlock` as their own
processes. The real driver's alarm needs a pin pressed, so that daemon runs in this process
(a mat on gpiozero's MockFactory pins, its clock "synchronized" as NTP would make it) while the
center's commands and `trygg simulate` still run as their own processes.
"""

import ast
import json
import subprocess
from pathlib import Path

import pytest

from agent import config as cfgmod
from base.clock import SystemClock
from agent.daemon import Daemon
from protocol.events import CLASSES, DRIVER_KINDS, TEST_KIND
from tests.support.lab import ENV, TRYGG, trygg, wait_for

EXIT_REFUSED = 4
DRIVERS = Path(__file__).resolve().parent.parent / "drivers"
ALL_DAY = [{"start": "00:00", "end": "00:00"}]
FLOOR_MAT = {"bedside": {"mode": "floor", "pressure": {"pin": 12}, "supervision": {"pin": 13},
                         "hold_s": 0.2, "debounce_s": 0.05, "schedule": ALL_DAY}}


class NtpClock(SystemClock):
    def synced(self) -> bool:
        return True


def unlock(lab, home, staff: str = "anna") -> tuple[int, dict | None, str]:
    proc = trygg("center", "unlock", home.id, "--as", staff, "--json", "--timeout", 15,
                 "--config", lab.center_config, check=False)
    return proc.returncode, (json.loads(proc.stdout) if proc.stdout.strip() else None), proc.stderr


def alarms_waiting(home) -> int:
    """Alarms committed and not yet acknowledged (no receiver runs in these homes' tests)."""
    return home.status()["outbox"]["classes"]["alarm"]["depth"]


# -- `trygg simulate` sends only what a driver sends, or `test` --------------------------------


def test_simulate_alarm_without_a_kind_or_with_an_unknown_kind_fails_and_commits_nothing(lab):
    home = lab.home("hem-kind").start()
    telemetry = home.status()["outbox"]["classes"]["telemetry"]["depth"]  # the start-up device_health
    missing = trygg("simulate", "alarm", "--config", home.config, check=False)
    assert missing.returncode == 1 and missing.stdout == ""
    assert "no kind given: simulate alarm needs --kind, one of bed_exit, door_open, dose_missed, fall, help, " \
           "inactivity, test" in missing.stderr
    banana = trygg("simulate", "alarm", "--kind", "banana", "--count", 3, "--config", home.config, check=False)
    assert banana.returncode == 1 and banana.stdout == ""
    assert "no driver sends 'banana' as alarm: --kind must be one of bed_exit, door_open, dose_missed, fall, " \
           "help, inactivity, test" in banana.stderr
    wrong_class = trygg("simulate", "telemetry", "--kind", "fall", "--config", home.config, check=False)
    assert wrong_class.returncode == 1 and "no driver sends 'fall' as telemetry" in wrong_class.stderr
    assert alarms_waiting(home) == 0 and home.status()["outbox"]["classes"]["telemetry"]["depth"] == telemetry
    # the same daemon does commit a kind that is allowed: nothing above was refused for another reason
    assert len(home.simulate("alarm", kind=TEST_KIND)) == 1 and len(home.simulate("alarm", kind="fall")) == 1
    classes = home.status()["outbox"]["classes"]
    assert alarms_waiting(home) == 1 and classes["test"]["depth"] == 1  # a test never waits with the alarms


def _driver_emits() -> set[tuple[str, str]]:
    """Every (class, kind) a driver in drivers/*.py passes to its emit, read from the source:
    string literals, `a if c else b`, and a name bound by a `for` over a tuple of tuples."""
    found: set[tuple[str, str]] = set()

    def strings(node, fn) -> list[str]:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, ast.IfExp):
            return strings(node.body, fn) + strings(node.orelse, fn)
        if isinstance(node, ast.Name):
            for loop in (n for n in ast.walk(fn) if isinstance(n, ast.For) and isinstance(n.target, ast.Tuple)):
                names = [t.id for t in loop.target.elts if isinstance(t, ast.Name)]
                if node.id in names and isinstance(loop.iter, ast.Tuple):
                    at = names.index(node.id)
                    return [v for item in loop.iter.elts for v in strings(item.elts[at], fn)]
        raise AssertionError(f"{path.name}:{node.lineno}: cannot read the class or kind of this emit; "
                             "use literals (and register the kind in agent/events.py DRIVER_KINDS)")

    for path in sorted(DRIVERS.glob("*.py")):
        tree = ast.parse(path.read_text())
        for fn in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
            for call in (n for n in ast.walk(fn) if isinstance(n, ast.Call)):
                if isinstance(call.func, ast.Attribute) and call.func.attr == "emit" and len(call.args) >= 2:
                    for cls in strings(call.args[0], fn):
                        for kind in strings(call.args[1], fn):
                            found.add((cls, kind))
    return found


def test_the_kinds_simulate_allows_are_exactly_what_the_drivers_send():
    emitted = _driver_emits()
    assert ("alarm", "fall") in emitted and ("alarm", "door_open") in emitted and ("event", "door_open") in emitted
    assert ("event", "dispenser_empty") in emitted  # a kind bound by a for loop was read
    registered = {(cls, kind) for cls in DRIVER_KINDS for kind in DRIVER_KINDS[cls]}
    assert emitted - registered == set(), "a driver sends a kind agent/events.py DRIVER_KINDS does not list"
    assert registered - emitted == set(), "DRIVER_KINDS lists a kind no driver sends"
    assert all(TEST_KIND not in kinds for kinds in DRIVER_KINDS.values())


# -- only a real driver's alarm opens the door to night staff ----------------------------------


def test_night_staff_unlock_is_refused_after_trygg_simulate_alarm(lab):
    home = lab.home("hem-test-alarm").start()
    lab.enroll(home, "anna", "night-staff")
    lab.enroll(home, "berit", "nurse")
    code, result, err = unlock(lab, home)
    assert code == EXIT_REFUSED, err  # no alarm yet: refused, as before
    home.simulate("alarm", kind=TEST_KIND)  # the installation check
    home.simulate("alarm", kind="fall", count=2)  # a test alarm pretending to be a fall is no better
    assert alarms_waiting(home) == 2
    assert home.status()["alarm_open"] is False
    code, result, err = unlock(lab, home)
    assert code == EXIT_REFUSED, (err, result)
    assert result["outcome"] == "refused" and "only while an alarm is open" in result["reason"]
    assert home.status()["locks"]["front-door"] == "locked"
    # the refusal is about the alarm, not the command path: a nurse (rule "always") unlocks
    code, result, err = unlock(lab, home, "berit")
    assert code == 0 and result["state"] == "unlocked", (err, result)


def test_night_staff_unlock_is_refused_after_a_simulated_worlds_alarm(lab, tmp_path):
    scenario = tmp_path / "fall.txt"
    scenario.write_text("start 22:00\nspeed 600\n22:01 bedside pressure pressed\n22:03 bedside pressure released\n"
                        "end 22:04\n")
    home = lab.home("hem-sim-fall", mats=FLOOR_MAT)
    lab.enroll(home, "anna", "night-staff")
    watch = lab.watch()
    home.proc = subprocess.Popen([*TRYGG, "run", "--simulate", "--scenario", scenario, "--once", "--config", home.config],
                                 stdin=subprocess.DEVNULL, stdout=open(home.log, "a"), stderr=subprocess.STDOUT, env=ENV)
    wait_for(home.responds, 20, "the simulated home to answer")
    fall = watch.wait_event(lambda e: e["home"] == home.id and e["kind"] == "fall", timeout=30)
    assert fall["class"] == "alarm" and fall["body"]["simulated"] is True
    assert home.status()["alarm_open"] is False
    code, result, err = unlock(lab, home)
    assert code == EXIT_REFUSED, (err, result, home.log.read_text()[-2000:])
    assert "only while an alarm is open" in result["reason"]
    assert home.status()["locks"]["front-door"] == "locked"


@pytest.fixture
def real_home(lab):
    """A home with a floor mat on MockFactory pins, not simulated, its daemon in this process."""
    home = lab.home("hem-real-fall", mats=FLOOR_MAT)
    lab.enroll(home, "anna", "night-staff")
    daemons: list[Daemon] = []

    def start() -> Daemon:
        daemon = Daemon(cfgmod.load(home.config), clock=NtpClock())
        daemons.append(daemon)
        daemon.start()
        wait_for(lambda: daemon.status()["link"] == "connected", 20, "the home to connect")
        return daemon

    yield lab, home, start
    for daemon in daemons:
        daemon.stop()


def step_on_the_mat(daemon: Daemon) -> None:
    """Pressure on the bedside mat's pressure pin, as the resident lying on it makes."""
    wiring = daemon.cfg.mats["bedside"].pressure
    pin = daemon.devices.factory.pin(wiring.pin)
    pin.drive_high() if wiring.active_high else pin.drive_low()


def test_night_staff_unlock_is_done_after_a_real_drivers_alarm_and_after_a_restart(real_home):
    lab, home, start = real_home
    daemon = start()
    code, result, err = unlock(lab, home)
    assert code == EXIT_REFUSED, (err, result)
    step_on_the_mat(daemon)
    wait_for(lambda: daemon.status()["unacked_alarms"]["depth"] == 1, 10, "the mat's fall alarm")
    assert daemon.status()["alarm_open"] is True
    code, result, err = unlock(lab, home)
    assert code == 0 and result["outcome"] == "done" and result["state"] == "unlocked", (err, result)
    # the open alarm is kept across a restart (a daemon crashing during an alarm must not lock staff out)
    wait_for(lambda: daemon.trust.setting("last_alarm") is not None, 10, "the alarm's time to be saved")
    daemon.stop()
    again = start()
    assert again.status()["alarm_open"] is True


def test_a_simulated_alarm_is_not_kept_as_open_across_a_restart(real_home):
    lab, home, start = real_home
    daemon = start()
    trygg("simulate", "alarm", "--kind", "fall", "--config", home.config)
    assert daemon.status()["unacked_alarms"]["depth"] == 1
    assert daemon.status()["alarm_open"] is False
    daemon.housekeeper.save_last_alarm()  # what housekeeping does every second; nothing to keep
    assert daemon.trust.setting("last_alarm") is None
    daemon.stop()
    again = start()
    assert again.status()["alarm_open"] is False
    code, result, err = unlock(lab, home)
    assert code == EXIT_REFUSED and "only while an alarm is open" in result["reason"], (err, result)

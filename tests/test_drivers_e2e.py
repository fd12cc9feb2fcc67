"""Drivers end to end: a pin edge in a home reaches the night staff's `trygg center watch --json`.

Real parts on loopback: the lab's Mosquitto with mutual TLS, `trygg center watch --json` as its
own process, homes provisioned with `trygg init`. The home either runs as `trygg run` (the
simulated night) or as `agent.daemon.Daemon` inside the test process with `[gpio] pins = "mock"`,
so the test can drive its gpiozero MockFactory pins: `drive_low()` is a press or a closed
contact with the default pull-up wiring.
"""

import subprocess
import time
from datetime import datetime, timedelta


from base.labpki import add_client
from tests.support.lab import ENV, TRYGG, Home, edit_toml, trygg, wait_for

ALL_DAY = [{"start": "00:00", "end": "12:00"}, {"start": "12:00", "end": "00:00"}]


def floor_mat(**extra) -> dict:
    return {"mode": "floor", "pressure": {"pin": 12}, "supervision": {"pin": 13}, "debounce_s": 0.02,
            "hold_s": 0.3, "schedule": ALL_DAY, **extra}


def ready(driver, **words) -> None:
    """Wait until the driver's first readings are in (and the mock world drove its fixed inputs)."""
    wait_for(lambda: driver.health()["inputs"] == words, 10, f"{driver.name} to read {words}")


def pin(driver, name: str):
    return driver.inputs[name].device.pin


def of_kind(watch, kind: str) -> list[dict]:
    with watch._cond:
        return [e for e in watch.events if e.get("kind") == kind]


def test_pin_edge_on_a_floor_mat_reaches_the_watch_as_a_fall_alarm(lab, run_daemon):
    home = lab.home("hem-mat-edge", gpio={"pins": "mock"}, mats={"bedside": floor_mat()})
    watch = lab.watch()
    daemon = run_daemon(home)
    mat = daemon.devices.devices.named("bedside")
    ready(mat, pressure="released", supervision="intact")

    # A tap shorter than hold_s is someone stepping on the mat, not a fall.
    pin(mat, "pressure").drive_low()
    time.sleep(0.05)
    pin(mat, "pressure").drive_high()
    time.sleep(0.6)
    assert of_kind(watch, "fall") == []

    pressed = time.monotonic()
    pin(mat, "pressure").drive_low()
    fall = watch.wait_event(lambda e: e.get("kind") == "fall", timeout=15)
    assert time.monotonic() - pressed >= 0.3, "the alarm came before the pressure lasted hold_s"
    assert fall["class"] == "alarm"
    assert fall["home"] == home.id
    assert fall["body"]["mat"] == "bedside"
    assert fall["body"]["mode"] == "floor"
    assert "simulated" not in fall["body"], "an event from a real pin must not be marked simulated"

    pin(mat, "pressure").drive_high()
    clear = watch.wait_event(lambda e: e.get("kind") == "mat_clear", timeout=15)
    assert clear["class"] == "event"
    assert clear["body"]["mat"] == "bedside"
    assert len(of_kind(watch, "fall")) == 1, "one press, one alarm"
    wait_for(lambda: daemon.status()["outbox"]["classes"]["alarm"]["depth"] == 0, 15,
             "the center to acknowledge the alarm")


def test_mat_clear_says_how_long_the_pressure_lasted(lab, run_daemon):
    """pressed_s of `mat_clear` is press edge -> release edge, not the release's own debounce."""
    home = lab.home("hem-mat-clear", gpio={"pins": "mock"}, mats={"bedside": floor_mat(hold_s=0.2)})
    watch = lab.watch()
    daemon = run_daemon(home)
    mat = daemon.devices.devices.named("bedside")
    ready(mat, pressure="released", supervision="intact")
    pin(mat, "pressure").drive_low()
    watch.wait_event(lambda e: e.get("kind") == "fall")
    time.sleep(1.0)
    pin(mat, "pressure").drive_high()
    clear = watch.wait_event(lambda e: e.get("kind") == "mat_clear")
    assert clear["body"]["pressed_s"] >= 1.0, f"pressed for over 1 s, mat_clear says {clear['body']}"


class SimulatedHome(Home):
    """A home provisioned with `trygg init --simulate`, run as `trygg run --simulate --once`."""

    SPEED = 3000

    def start(self) -> "SimulatedHome":
        self.proc = subprocess.Popen([*TRYGG, "run", "--simulate", "--once", "--speed", str(self.SPEED),
                                      "--config", str(self.config)], stdin=subprocess.DEVNULL,
                                     stdout=open(self.log, "a"), stderr=subprocess.STDOUT, env=ENV)
        wait_for(self.responds, 20, f"home {self.id} to answer on its control socket")
        return self


def simulated_home(lab, home_id: str) -> SimulatedHome:
    """What Lab.home does, with `trygg init --simulate` (the full simulated home's wiring)."""
    add_client(lab.pki, home_id)
    cert, key = lab.pki.client(home_id)
    directory = lab.root / home_id
    trygg("init", "--home", home_id, "--broker", lab.broker, "--ca", lab.pki.ca, "--cert", cert, "--key", key,
          "--center-key", lab.root / "center" / "center.pub", "--dir", directory, "--kem", lab.kem, "--simulate")
    trygg("center", "add-home", directory / "device.pub", "--config", lab.center_config)
    edit_toml(directory / "trygg.toml", {"uplink": {"backoff_min_s": 0.2, "backoff_max_s": 1.0}})
    home = SimulatedHome(directory, home_id)
    lab.homes.append(home)
    return home


NIGHT_ALARMS = {  # drivers/scenarios/night.txt: each alarm and the simulated local time it is due
    "dose_missed": "23:00",  # the 22:00 dose, window 1 h
    "door_open": "03:00:10",  # front door opened inside its 22:00-07:00 door_alarm window
    "fall": "04:11:10",  # bedside pressed at 04:11, hold 10 s
    "bed_exit": "04:25",  # out of bed at 04:10, away_s 15 min
    "help": "06:30",  # the wrist button
}


def test_simulated_night_sends_its_alarms_to_the_watch(lab):
    watch = lab.watch()
    home = simulated_home(lab, "hem-sim-night")
    assert 'pins = "mock"' in home.config.read_text() and "[mats.bedside]" in home.config.read_text()
    home.start()

    # The night (22:00-07:30 simulated) takes 34200 / 3000 = 11.4 s.
    def alarm_kinds() -> set[str]:
        with watch._cond:
            return {e["kind"] for e in watch.events if e.get("class") == "alarm"}

    wait_for(lambda: set(NIGHT_ALARMS) <= alarm_kinds(), 60, f"the night's alarms ({', '.join(NIGHT_ALARMS)}) at the watch")
    time.sleep(2)  # the rest of the night (07:30 is 1 simulated hour = 1.2 s after the help alarm)

    with watch._cond:
        simulated = [e for e in watch.events if e["home"] == home.id and "sim_time" in e["body"]]
    assert simulated and all(e["body"]["simulated"] is True for e in simulated)
    with watch._cond:
        every_alarm = [e for e in watch.events if e.get("class") == "alarm"]
    assert all(e["body"].get("simulated") is True for e in every_alarm), "a simulated home's alarm not marked simulated"
    # With --once the scenario is played once, then the home runs on at real speed; judge the night.
    sim = {e["id"]: datetime.fromisoformat(e["body"]["sim_time"]) for e in simulated}
    first = min(sim.values())
    start = first.replace(hour=22, minute=0, second=0) - timedelta(days=0 if first.hour >= 22 else 1)
    night = [e for e in simulated if sim[e["id"]] <= start + timedelta(hours=9, minutes=30)]
    alarms = [e for e in night if e["class"] == "alarm"]
    seen = sorted(e["kind"] for e in alarms)
    assert sorted(set(seen)) == seen, f"an alarm twice: {[(e['kind'], e['body']['sim_time']) for e in alarms]}"
    assert set(seen) == set(NIGHT_ALARMS), \
        f"the night's alarms: {[(e['kind'], e['body']['sim_time']) for e in alarms]}"
    for alarm in alarms:
        due_text = NIGHT_ALARMS[alarm["kind"]]
        due = datetime.combine(start.date() + timedelta(days=0 if due_text >= "22" else 1),
                               datetime.strptime(due_text, "%H:%M:%S" if due_text.count(":") == 2 else "%H:%M").time(),
                               tzinfo=start.tzinfo)
        # Every step is played a little late: the scenario clock starts with the drivers' set-up and the
        # player only after the uplink and control socket (~10 ms real here, ~30 s simulated at 3000x).
        late = (sim[alarm["id"]] - due).total_seconds()
        assert 0 <= late <= 600, f"{alarm['kind']} at {alarm['body']['sim_time']}, due {due.time()}"
    kinds = {e["kind"]: e for e in alarms}
    assert kinds["fall"]["body"]["mat"] == "bedside"
    assert kinds["bed_exit"]["body"]["mat"] == "bed"
    assert kinds["door_open"]["body"]["lock"] == "front-door"
    assert kinds["dose_missed"]["body"]["dispenser"] == "kitchen"
    assert not [e for e in night if e["kind"] == "fault"], "the simulated night must run without driver faults"
    assert kinds["help"]["body"]["button"] == "wrist"


def test_a_crashed_driver_is_restarted_reported_and_the_others_keep_alarming(lab, run_daemon):
    home = lab.home("hem-crash-driver", gpio={"pins": "mock", "restart_min_s": 3.0},
                    mats={"bedside": floor_mat()}, buttons={"wrist": {"input": {"pin": 16}, "debounce_s": 0.02}})
    watch = lab.watch()
    daemon = run_daemon(home)
    mat = daemon.devices.devices.named("bedside")
    button = daemon.devices.devices.named("wrist")
    ready(mat, pressure="released", supervision="intact")
    ready(button, button="released")
    before = mat.inputs["pressure"]

    def crash_once(now):
        del mat.step  # the next run of the driver uses its own step again
        raise RuntimeError("injected crash")

    mat.step = crash_once
    mat.wake()
    fault = watch.wait_event(lambda e: e.get("kind") == "fault" and e["body"].get("component") == "mat:bedside")
    assert fault["class"] == "event"
    assert "RuntimeError: injected crash" in fault["body"]["detail"]
    assert fault["body"]["restart_in_s"] == 3.0

    # While the mat waits for its restart, another driver's alarm still gets through.
    assert before.device.closed, "the crashed driver's pins are released until it is set up again"
    pin(button, "button").drive_low()
    help_alarm = watch.wait_event(lambda e: e.get("kind") == "help")
    pin(button, "button").drive_high()
    assert help_alarm["class"] == "alarm" and help_alarm["body"]["button"] == "wrist"
    assert mat.inputs["pressure"] is before, "the mat came back before its backoff"

    # The mat is set up again and protects the resident again.
    wait_for(lambda: mat.inputs.get("pressure") is not before and not mat.inputs["pressure"].device.closed, 10,
             "the mat to be restarted")
    ready(mat, pressure="released", supervision="intact")
    pin(mat, "pressure").drive_low()
    fall = watch.wait_event(lambda e: e.get("kind") == "fall")
    pin(mat, "pressure").drive_high()
    assert fall["class"] == "alarm" and fall["body"]["mat"] == "bedside"

    health = daemon.status()["drivers"]
    assert health["bedside"]["crashes"] == 1 and "injected crash" in health["bedside"]["error"]
    assert health["wrist"]["crashes"] == 0 and health["wrist"]["running"]
    faults = [e for e in of_kind(watch, "fault") if e["body"].get("component") == "mat:bedside"]
    assert len(faults) == 1, "one crash, one fault"

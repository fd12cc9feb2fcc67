"""What keeps the drivers running and configured: restart after a crash (drivers/base.py), the
device-health reading (drivers/health.py), scenario files (drivers/scenario.py) and the checks
across devices in the config (agent/config.py DeviceConfig)."""

import time
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from gpiozero import DigitalInputDevice
from gpiozero.pins.mock import MockFactory
from pydantic import ValidationError

from base.clock import SystemClock
from agent.config import DeviceConfig, describe_errors
from drivers.health import HealthConfig
from drivers.wiring import InputWiring
from drivers import scenario as scenarios
from drivers.base import STABLE_S, Driver
from drivers.health import DeviceHealth
from tests.support.fakes import FakeClock
from tests.support.homekit import WALL, Recorder, home_data, make_home  # noqa: F401 - fixture

# -- restart after a crash --------------------------------------------------------------------------


class Flaky(Driver):
    """A driver with one real input whose step() (or setup()) raises the first `fails` times."""

    kind = "flaky"

    def __init__(self, emit, clock, factory, *, fails: int, fail_in: str = "step", restart=(0.05, 0.2)) -> None:
        super().__init__("x", emit, clock, pin_factory=factory, restart=restart)
        self.fails, self.fail_in = fails, fail_in
        self.steps = 0
        self.opens = 0

    def _maybe_fail(self, where: str) -> None:
        if self.fail_in == where and self.fails > 0:
            self.fails -= 1
            raise RuntimeError(f"boom in {where}")

    def setup(self) -> None:
        self.opens += 1
        self.button = self.input("button", InputWiring(pin=16), 0.05)
        self._maybe_fail("setup")

    def step(self, now: float) -> float | None:
        self.steps += 1
        self.button.update(now)
        self._maybe_fail("step")
        return None


def wait_for(condition, timeout: float = 5.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def runners():
    started: list[Driver] = []
    yield started
    for driver in started:
        driver.stop()


def test_a_crashing_driver_is_restarted_reports_faults_and_keeps_running(runners):
    events, factory = Recorder(), MockFactory()
    driver = Flaky(events, SystemClock(), factory, fails=10**9)
    runners.append(driver)
    driver.start()
    wait_for(lambda: len(events.of("fault")) >= 3, what="three crashes")
    assert driver.alive(), "a crash must not end the driver's thread"
    fault = events.of("fault")[0]
    assert fault.cls == "event"
    assert fault.body["component"] == "flaky:x"
    assert "RuntimeError: boom in step" in fault.body["detail"]
    assert 0 < fault.body["restart_in_s"] <= 0.2
    health = driver.health()
    assert health["crashes"] >= 3 and health["running"] is False
    assert "boom" in health["error"]
    assert driver.opens >= 3, "each restart sets the driver up again (its pins closed and reopened)"
    driver.stop()
    assert not driver.alive()
    assert not driver.is_open
    DigitalInputDevice(16, pin_factory=factory).close()  # the pin was released on stop


def test_restarts_back_off_instead_of_spinning(runners):
    events = Recorder()
    driver = Flaky(events, SystemClock(), MockFactory(), fails=10**9, restart=(0.05, 0.2))
    runners.append(driver)
    driver.start()
    time.sleep(0.6)  # 0.05 + 0.1 + 0.2 + 0.2 ... : a handful of restarts, not thousands
    driver.stop()
    assert 2 <= driver.crashes <= 8
    waits = [e.body["restart_in_s"] for e in events.of("fault")]
    assert waits == sorted(waits) and max(waits) <= 0.2, "the backoff doubles up to its maximum"


def test_a_driver_that_fails_in_setup_is_retried_too(runners):
    events = Recorder()
    driver = Flaky(events, SystemClock(), MockFactory(), fails=2, fail_in="setup")
    runners.append(driver)
    driver.start()
    wait_for(lambda: driver.steps >= 1, what="the driver to run after two failed setups")
    assert driver.crashes == 2 and driver.opens == 3
    assert driver.alive()
    assert [e.body["component"] for e in events.of("fault")] == ["flaky:x", "flaky:x"]


def test_a_driver_running_stable_after_a_crash_sends_fault_cleared_and_reports_healthy(runners):
    events = Recorder()
    clock = FakeClock(WALL)  # never blocks: the runner's minute passes at once
    driver = Flaky(events, clock, MockFactory(), fails=1)
    runners.append(driver)
    driver.start()
    wait_for(lambda: events.of("fault_cleared"), what="fault_cleared")
    cleared = events.one("fault_cleared")
    assert cleared.body["component"] == "flaky:x" and "1 crash" in cleared.body["detail"]
    assert events.kinds() == ["fault", "fault_cleared"]
    assert clock.monotonic() - 1000.0 >= STABLE_S
    health = driver.health()
    assert health["error"] is None and health["crashes"] == 1 and health["running"] is True
    driver.stop()
    assert driver.health()["running"] is False


def test_emit_raising_does_not_crash_the_driver(make_home):
    failing = Recorder(fail=True)
    home = make_home(events=failing)
    mat = home.open("bedside")
    home.set("bedside", "pressure", "pressed")
    home.run(11)  # the fall alarm cannot be stored: emit raises
    assert failing.kinds() == ["fall"]
    assert mat.error and "emit failed" in mat.error and "disk full" in mat.error
    home.set("bedside", "pressure", "released")
    assert failing.kinds() == ["fall", "mat_clear"], "the driver stopped working after a failed emit"


def test_emit_raising_in_a_running_driver_keeps_its_thread_alive(make_home):
    failing = Recorder(fail=True)
    home = make_home(events=failing)
    button = home.driver("wrist")
    button.clock = SystemClock()  # the runner thread on real time (no simulated minutes here)
    button.start()
    try:
        wait_for(lambda: button.is_open and "button" in button.inputs, what="the button to open")
        button.inputs["button"].device.pin.drive_low()  # pressed
        wait_for(lambda: failing.kinds(), what="the help alarm attempt")
        assert button.alive() and button.crashes == 0
        assert "emit failed" in button.health()["error"]
    finally:
        button.stop()


# -- device health -------------------------------------------------------------------------------


def write(path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def health_driver(tmp_path, sysfs, synced: bool = True, every_s: float = 900.0):
    events = Recorder()
    driver = DeviceHealth("device", HealthConfig(sysfs=str(sysfs), every_s=every_s), events,
                          FakeClock(WALL, synced=synced), data_dir=tmp_path)
    return driver, events


def test_health_reading_from_the_pis_sysfs(tmp_path):
    sysfs = tmp_path / "sys"
    write(sysfs / "class/thermal/thermal_zone0/temp", "48312\n")
    write(sysfs / "class/hwmon/hwmon0/name", "cpu_thermal\n")
    write(sysfs / "class/hwmon/hwmon1/name", "rpi_volt\n")
    write(sysfs / "class/hwmon/hwmon1/in0_lcrit_alarm", "1\n")
    driver, _ = health_driver(tmp_path, sysfs)
    reading = driver.reading()
    assert reading["cpu_temp_c"] == 48.3
    assert reading["under_voltage"] is True
    assert reading["clock_synced"] is True
    assert isinstance(reading["disk_free_mb"], int) and reading["disk_free_mb"] > 0
    assert 0 < reading["disk_free_pct"] <= 100


def test_health_reading_with_rpi_volt_as_the_only_hwmon(tmp_path):
    sysfs = tmp_path / "sys"
    write(sysfs / "class/thermal/thermal_zone0/temp", "48312")
    write(sysfs / "class/hwmon/hwmon0/name", "rpi_volt")
    write(sysfs / "class/hwmon/hwmon0/in0_lcrit_alarm", "1")
    driver, _ = health_driver(tmp_path, sysfs)
    assert (driver.reading()["cpu_temp_c"], driver.reading()["under_voltage"]) == (48.3, True)


def test_health_supply_voltage_good_is_false_not_none(tmp_path):
    sysfs = tmp_path / "sys"
    write(sysfs / "class/hwmon/hwmon0/name", "rpi_volt")
    write(sysfs / "class/hwmon/hwmon0/in0_lcrit_alarm", "0")
    driver, _ = health_driver(tmp_path, sysfs, synced=False)
    reading = driver.reading()
    assert reading["under_voltage"] is False
    assert reading["clock_synced"] is False


def test_health_values_the_platform_does_not_offer_are_none(tmp_path):
    sysfs = tmp_path / "sys"
    sysfs.mkdir()
    driver, _ = health_driver(tmp_path, sysfs)
    reading = driver.reading()
    assert reading["cpu_temp_c"] is None and reading["under_voltage"] is None


def test_health_unreadable_values_are_none_never_a_guess(tmp_path):
    sysfs = tmp_path / "sys"
    write(sysfs / "class/thermal/thermal_zone0/temp", "not a number")
    write(sysfs / "class/hwmon/hwmon0/name", "rpi_volt")  # but no in0_lcrit_alarm file
    write(sysfs / "class/hwmon/hwmon1/name", "something_else")
    driver, _ = health_driver(tmp_path, sysfs)
    reading = driver.reading()
    assert reading["cpu_temp_c"] is None and reading["under_voltage"] is None


def test_health_telemetry_goes_out_every_every_s(tmp_path):
    driver, events = health_driver(tmp_path, tmp_path / "nosys", every_s=60)
    due = driver.poll()
    assert events.kinds("telemetry") == ["device_health"]
    assert events.events[0].body["health"] == "device"
    assert due == driver.clock.monotonic() + 60
    driver.clock.advance(59)
    driver.poll()
    assert len(events.events) == 1
    driver.clock.advance(1)
    driver.poll()
    assert len(events.events) == 2


# -- scenarios ------------------------------------------------------------------------------------

NIGHT = """\
# a short night
start 22:00
speed 600

22:10    bed pressure pressed   # in bed
23:59:30 say almost midnight
01:30    bed pressure released
01:30    hall motion motion
03:00    jam front-door
end 07:30
"""


def test_scenario_times_roll_past_midnight_and_comments_are_ignored():
    scenario = scenarios.parse(NIGHT, "night.txt")
    assert scenario.start == "22:00" and scenario.speed == 600.0
    assert [(s.at_s, s.line, s.words) for s in scenario.steps] == [
        (600, 5, ("bed", "pressure", "pressed")),
        (7170, 6, ("say", "almost", "midnight")),
        (12600, 7, ("bed", "pressure", "released")),
        (12600, 8, ("hall", "motion", "motion")),  # the same time again is not the next day
        (18000, 9, ("jam", "front-door")),
    ]
    assert scenario.end_s == 9.5 * 3600
    assert scenario.source == "night.txt"


def test_scenario_a_time_before_the_start_is_the_next_day():
    scenario = scenarios.parse("start 22:00\n21:00 say a day later\n", "s")
    assert scenario.steps[0].at_s == 23 * 3600


def test_scenario_times_never_go_back_an_earlier_time_than_the_line_before_is_the_next_day():
    scenario = scenarios.parse("start 22:00\n23:00 say one\n22:30 say two\nend 22:45\n", "s")
    assert [s.at_s for s in scenario.steps] == [3600, 24.5 * 3600]
    assert scenario.end_s == 24.75 * 3600


@pytest.mark.parametrize("text, line, fragment", [
    ("start 22:00\n22:10 bed pressure pressed\n25:00 bed pressure released\n", 3, "expected a time"),
    ("start 22:00\n22:1O bed pressure pressed\n", 2, "expected a time"),
    ("start 22:00\n\n# comment\n22:10:75 say hi\n", 4, "expected a time"),
    ("start 10pm\n", 1, "expected a time"),
    ("# no start\n22:10 bed pressure pressed\n", 2, "must begin with `start"),
    ("start 22:00\nspeed fast\n", 2, "speed must be a number"),
    ("start 22:00\n22:10\n", 2, "expected `TIME DEVICE INPUT STATE`"),
])
def test_scenario_errors_name_the_file_and_line(text, line, fragment):
    with pytest.raises(scenarios.ScenarioError) as failed:
        scenarios.parse(text, "bad.txt")
    message = str(failed.value)
    assert message.startswith(f"bad.txt:{line}: "), message
    assert fragment in message


def test_scenario_without_a_start_is_an_error():
    with pytest.raises(scenarios.ScenarioError, match=r"^empty.txt: empty scenario"):
        scenarios.parse("# nothing here\n\n", "empty.txt")


def test_scenario_file_that_cannot_be_read_is_a_scenario_error(tmp_path):
    with pytest.raises(scenarios.ScenarioError, match="cannot read"):
        scenarios.load(tmp_path / "missing.txt")


@pytest.fixture
def home_inputs(make_home):
    home = make_home()
    drivers = home.devices.drivers
    return {d.name: d.INPUTS for d in drivers if d.INPUTS}, set(home.devices.of_kind("lock"))


@pytest.mark.parametrize("step, fragment", [
    ("bedroom pressure pressed", "no device 'bedroom'"),
    ("bed weight pressed", "bed has no input 'weight'"),
    ("bed pressure squashed", "bed.pressure is pressed or released, not 'squashed'"),
    ("jam back-door", "`jam LOCK` needs one of: front-door, medicine-cabinet"),
    ("bed pressure", "expected `TIME DEVICE INPUT STATE`"),
])
def test_scenario_check_names_the_line_with_an_unknown_device_input_or_state(home_inputs, step, fragment):
    inputs, locks = home_inputs
    scenario = scenarios.parse(f"start 22:00\n# fine so far\n22:10 {step}\n", "home.txt")
    with pytest.raises(scenarios.ScenarioError) as failed:
        scenarios.check(scenario, inputs, locks)
    assert str(failed.value).startswith("home.txt:3: ")
    assert fragment in str(failed.value)


def test_the_built_in_night_fits_the_simulated_home(home_inputs):
    inputs, locks = home_inputs
    night = scenarios.load(None)
    scenarios.check(night, inputs, locks)  # raises on any step the home cannot play
    assert night.start == "22:00" and night.end_s == 9.5 * 3600


def test_scenario_start_is_the_local_start_time_today():
    zone = ZoneInfo("Europe/Stockholm")
    scenario = scenarios.parse("start 22:00\n", "s")
    start = scenarios.start_at(scenario, zone, datetime(2026, 11, 24).date())
    assert start.astimezone(timezone.utc) == WALL


# -- config checks across devices ------------------------------------------------------------------


def config_error(overrides: dict) -> str:
    with pytest.raises(ValidationError) as failed:
        DeviceConfig.model_validate(home_data(overrides))
    return describe_errors(failed.value)


def test_the_simulated_home_config_is_valid_and_lists_every_pin():
    cfg = DeviceConfig.model_validate(home_data())
    pins = dict(cfg.pins())
    assert pins["locks.front-door.relay"] == 17 and pins["dispensers.kitchen.jam"] == 4
    assert len(set(pins.values())) == len(pins)


def test_config_a_pin_used_twice_is_an_error_naming_both_keys():
    message = config_error({"buttons": {"wrist": {"input": {"pin": 17}}}})
    assert "GPIO17" in message
    assert "locks.front-door.relay" in message and "buttons.wrist.input" in message


def test_config_a_pin_used_twice_inside_one_device_is_an_error():
    message = config_error({"mats": {"bed": {"supervision": {"pin": 5}}}})
    assert "mats.bed.pressure" in message and "mats.bed.supervision" in message and "GPIO5" in message


def test_config_pull_none_without_an_active_level_is_an_error():
    message = config_error({"mats": {"bed": {"pressure": {"pin": 5, "pull": "none"}}}})
    assert message.startswith("mats.bed.pressure: ")
    assert "active level must be given" in message


def test_config_pull_none_with_an_active_level_is_accepted():
    cfg = DeviceConfig.model_validate(home_data({"mats": {"bed": {"pressure": {"pin": 5, "pull": "none",
                                                                               "active": "high"}}}}))
    assert cfg.mats["bed"].pressure.active_high is True


def test_config_two_doses_at_the_same_time_is_an_error():
    message = config_error({"dispensers": {"kitchen": {"doses": [{"time": "08:00"}, {"time": "08:00",
                                                                                     "window_s": 600}]}}})
    assert message.startswith("dispensers.kitchen: ")
    assert "two doses at the same time" in message


def test_config_a_bad_dose_time_is_an_error_naming_the_dose():
    message = config_error({"dispensers": {"kitchen": {"doses": [{"time": "8:00"}]}}})
    assert message.startswith("dispensers.kitchen.doses.0.time: ")
    assert "HH:MM" in message


def test_config_the_same_device_name_in_two_sections_is_an_error():
    message = config_error({"buttons": {"bed": {"input": {"pin": 7}}}})
    assert "buttons.bed" in message and "[mats]" in message


def test_config_a_device_named_like_the_device_health_driver_is_an_error():
    message = config_error({"buttons": {"device": {"input": {"pin": 7}}}})
    assert "buttons.device" in message and "[health]" in message


def test_config_every_problem_is_listed():
    message = config_error({"buttons": {"wrist": {"input": {"pin": 40}}},
                            "motion": {"hall": {"input": {"pin": 26, "pull": "sideways"}}}})
    lines = message.splitlines()
    assert any(line.startswith("buttons.wrist.input.pin: ") for line in lines)
    assert any(line.startswith("motion.hall.input.pull: ") for line in lines)



class Eager(Driver):
    """A driver that has something to emit at every step and asks to be polled again at once:
    the worst case for a card that refuses every event."""

    kind = "eager"

    def __init__(self, emit, clock) -> None:
        super().__init__("x", emit, clock, pin_factory=MockFactory())
        self.attempts = 0

    def step(self, now: float) -> float | None:
        self.attempts += 1
        if self.attempts >= 40:
            self._stop.set()
        self.emit("telemetry", "reading", {"n": self.attempts})
        return now  # due again right away


def test_a_driver_whose_emits_fail_backs_off_instead_of_spinning():
    clock = FakeClock(WALL)
    driver = Eager(Recorder(fail=True), clock)
    start = clock.monotonic()
    driver._run(start)  # the runner loop itself, on a clock that moves only when it waits
    spent = clock.monotonic() - start
    # 39 waits after failed emits: 0.25, 0.5, 1, then 2 s each - not 39 immediate polls
    assert spent >= 0.25 + 0.5 + 1.0 + 2.0 * 35, f"40 failing emits in {spent:.2f} s of driver time"
    assert driver.emit_failures == 40


def test_a_driver_polls_on_time_again_once_an_emit_works():
    clock = FakeClock(WALL)
    events = Recorder(fail=True)
    driver = Eager(events, clock)
    driver.emit("telemetry", "reading")
    assert driver.emit_failures == 1
    events.fail = False
    driver.emit("telemetry", "reading")
    assert driver.emit_failures == 0 and driver._emit_quiet_until == float("-inf")

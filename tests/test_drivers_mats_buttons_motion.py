"""Alarm mats (floor and bed), the alarm button and the motion sensor, on mock pins with a fake clock.

The simulated home (agent/provision.py SIMULATED_HOME): floor mat `bedside` and bed mat `bed` with
the default night schedule 22:00-07:00, button `wrist`, motion sensor `hall` (day window
07:00-22:00, 4 h quiet). Times are Stockholm local (UTC+1 in November)."""

import pytest

from agent.devices import DriverState, MemoryState, build
from agent.trustdb import TrustDB
from drivers.base import IDLE_S
from tests.support.homekit import Home, assert_not_spinning, local, make_home  # noqa: F401 - fixture

# -- floor mat ------------------------------------------------------------------------------------


def test_floor_mat_pressure_longer_than_hold_raises_one_fall_alarm(make_home):
    home = make_home()  # 22:00: inside the night schedule
    home.open("bedside")
    home.set("bedside", "pressure", "pressed")
    home.run(9.0)
    assert home.events.alarms() == [], "a fall alarm before hold_s (10 s)"
    home.run(1.5)
    fall = home.events.one("fall", "alarm")
    assert fall.body == {"mat": "bedside", "pressed_s": 10.0, "mode": "floor"}
    home.run(600)  # lying there for ten minutes is still one fall
    assert home.events.alarms() == ["fall"]


def test_floor_mat_short_pressure_is_not_a_fall(make_home):
    home = make_home()
    home.open("bedside")
    home.set("bedside", "pressure", "pressed")
    home.run(5)
    home.set("bedside", "pressure", "released")  # a foot on the mat getting into bed
    home.run(60)
    assert home.events.kinds() == []


def test_floor_mat_release_after_a_fall_sends_mat_clear_and_a_new_press_is_a_new_fall(make_home):
    home = make_home()
    home.open("bedside")
    home.set("bedside", "pressure", "pressed")
    home.run(40)
    home.set("bedside", "pressure", "released")
    clear = home.events.one("mat_clear", "event")
    assert clear.body["mat"] == "bedside"
    home.run(30)
    home.set("bedside", "pressure", "pressed")
    home.run(11)
    assert home.events.kinds() == ["fall", "mat_clear", "fall"]


def test_floor_mat_clear_says_how_long_the_pressure_lasted(make_home):
    home = make_home()
    home.open("bedside")
    home.set("bedside", "pressure", "pressed")
    home.run(40)  # lying on the floor for about 40 s
    home.set("bedside", "pressure", "released")
    clear = home.events.one("mat_clear", "event")
    assert clear.body["pressed_s"] == pytest.approx(40.5, abs=1.0)


def test_floor_mat_release_without_an_alarm_sends_no_mat_clear(make_home):
    home = make_home(start=local("14:00"))
    home.open("bedside")
    home.set("bedside", "pressure", "pressed")
    home.run(30)
    home.set("bedside", "pressure", "released")
    assert home.events.kinds() == []


def test_floor_mat_pressure_outside_the_night_schedule_raises_nothing(make_home):
    home = make_home(start=local("14:00"))  # afternoon: the mat is not watched
    home.open("bedside")
    home.set("bedside", "pressure", "pressed")
    home.run(15 * 60)
    assert home.events.kinds() == []


def test_floor_mat_pressed_outside_the_schedule_does_not_make_the_runner_spin(make_home):
    home = make_home(start=local("14:00"))
    mat = home.open("bedside")
    home.set("bedside", "pressure", "pressed")
    home.run(60)
    assert_not_spinning(home, mat)


def test_floor_mat_still_pressed_when_the_schedule_starts_raises_a_fall(make_home):
    home = make_home(start=local("21:55"))
    home.open("bedside")
    home.set("bedside", "pressure", "pressed")
    home.run(4 * 60)
    assert home.events.alarms() == []
    home.run_until(local("22:00:20"))  # the runner looks at least every IDLE_S
    assert home.events.alarms() == ["fall"]


def test_floor_mat_with_an_unsynchronized_clock_counts_as_inside_the_schedule(make_home):
    home = make_home(start=local("14:00"), synced=False)  # local time is only a guess
    home.open("bedside")
    home.set("bedside", "pressure", "pressed")
    home.run(11)
    assert home.events.alarms() == ["fall"]


def test_mat_supervision_loop_open_is_one_fault_and_ignores_pressure_until_reconnected(make_home):
    home = make_home()
    mat = home.open("bedside")
    home.set("bedside", "supervision", "cut")
    fault = home.events.one("fault", "event")
    assert fault.body["component"] == "mat:bedside"
    assert "cut" in fault.body["detail"]
    assert mat.health()["inputs"]["supervision"] == "cut"
    home.set("bedside", "pressure", "pressed")
    home.run(10 * 60)
    assert home.events.kinds() == ["fault"], "pressure on a mat with an open loop must be ignored"
    home.set("bedside", "pressure", "released")
    home.set("bedside", "supervision", "intact")
    cleared = home.events.one("fault_cleared", "event")
    assert cleared.body["component"] == "mat:bedside"
    home.run(60)
    assert home.events.kinds() == ["fault", "fault_cleared"]


def test_mat_protects_again_after_the_cable_is_reconnected(make_home):
    home = make_home()
    home.open("bedside")
    home.set("bedside", "supervision", "cut")
    home.set("bedside", "supervision", "intact")
    home.set("bedside", "pressure", "pressed")
    home.run(11)
    assert home.events.kinds() == ["fault", "fault_cleared", "fall"]


def test_mat_with_its_cable_unplugged_at_start_up_reports_a_fault(make_home):
    home = make_home()
    home.world.physical[("bedside", "supervision")] = False  # unplugged before the driver starts
    home.open("bedside")
    assert home.events.kinds() == ["fault"]


def test_mat_supervision_bounce_shorter_than_debounce_is_not_a_fault(make_home):
    home = make_home()
    mat = home.open("bedside")
    home.set("bedside", "supervision", "cut", settle=False)
    home.run(0.2)  # debounce_s is 0.5
    home.set("bedside", "supervision", "intact")
    home.run(5)
    assert home.events.kinds() == []
    assert mat.health()["inputs"]["supervision"] == "intact"


# -- bed mat ----------------------------------------------------------------------------------------

def in_bed(home: Home):
    mat = home.open("bed")
    home.set("bed", "pressure", "pressed")
    home.run(60)
    return mat


def test_bed_mat_leaving_the_bed_at_night_and_not_back_within_away_s_raises_bed_exit(make_home):
    home = make_home(start=local("22:30"))
    in_bed(home)
    home.set("bed", "pressure", "released")
    home.run(14 * 60)
    assert home.events.alarms() == []
    home.run(61)
    exit_ = home.events.one("bed_exit", "alarm")
    assert exit_.body["mode"] == "bed" and exit_.body["mat"] == "bed"
    assert exit_.body["away_s"] == pytest.approx(900, abs=1)
    home.run(30 * 60)
    assert home.events.alarms() == ["bed_exit"], "one alarm per time out of bed"


def test_bed_mat_back_in_bed_within_away_s_raises_nothing(make_home):
    home = make_home(start=local("01:30", day=25))
    in_bed(home)
    home.set("bed", "pressure", "released")
    home.run(10 * 60)  # to the toilet and back
    home.set("bed", "pressure", "pressed")
    home.run(60 * 60)
    assert home.events.kinds() == []


def test_bed_mat_back_in_bed_after_the_alarm_sends_bed_return(make_home):
    home = make_home(start=local("23:00"))
    in_bed(home)
    home.set("bed", "pressure", "released")
    home.run(20 * 60)
    home.set("bed", "pressure", "pressed")
    assert home.events.kinds() == ["bed_exit", "bed_return"]
    back = home.events.one("bed_return", "event")
    assert back.body["away_s"] == pytest.approx(20 * 60, abs=2)


def test_bed_mat_out_of_bed_at_start_up_is_not_leaving_the_bed(make_home):
    home = make_home(start=local("23:00"))  # the driver (re)starts while the bed is empty
    home.open("bed")
    home.run(60 * 60)
    assert home.events.kinds() == []


def test_bed_mat_getting_up_before_the_schedule_starts_raises_nothing(make_home):
    home = make_home(start=local("21:30"))
    in_bed(home)
    home.run_until(local("21:50"))
    home.set("bed", "pressure", "released")  # up at 21:50 and still up long after 22:00
    home.run(60 * 60)
    assert home.events.kinds() == []


def test_bed_mat_timer_running_past_the_end_of_the_schedule_raises_nothing(make_home):
    home = make_home(start=local("06:40", day=25))
    in_bed(home)
    home.run_until(local("06:50", day=25))
    home.set("bed", "pressure", "released")  # up at 06:50: at 07:05 it is morning, not an alarm
    home.run(60 * 60)
    assert home.events.kinds() == []


def test_bed_mat_a_new_time_out_of_bed_after_a_return_raises_again(make_home):
    home = make_home(start=local("23:00"))
    in_bed(home)
    for _ in range(2):
        home.set("bed", "pressure", "released")
        home.run(16 * 60)
        home.set("bed", "pressure", "pressed")
        home.run(60)
    assert home.events.kinds() == ["bed_exit", "bed_return", "bed_exit", "bed_return"]


# -- alarm button -----------------------------------------------------------------------------------

def press(home: Home, held_s: float) -> None:
    home.set("wrist", "button", "pressed")
    home.run(held_s)
    home.set("wrist", "button", "released")


def test_alarm_button_press_raises_help_at_once(make_home):
    home = make_home()
    home.open("wrist")
    home.set("wrist", "button", "pressed", settle=False)
    assert home.events.kinds() == []
    home.run(0.06)  # the button's debounce (50 ms)
    help_ = home.events.one("help", "alarm")
    assert help_.body == {"button": "wrist", "repeat": False}


def test_alarm_button_held_at_start_up_is_not_a_press(make_home):
    home = make_home()
    home.world.physical[("wrist", "button")] = True  # e.g. something lying on it while the driver restarts
    home.open("wrist")
    home.run(10)
    assert home.events.kinds() == []


def test_alarm_button_second_long_press_within_the_window_cancels_but_never_withholds(make_home):
    home = make_home()
    home.open("wrist")
    press(home, 0.3)
    assert home.events.alarms() == ["help"], "the alarm goes out at the first press, cancellable or not"
    home.run(20)
    home.set("wrist", "button", "pressed")
    home.run(2.5)
    assert home.events.kinds() == ["help"], "cancelled before cancel_hold_s (3 s)"
    home.run(0.6)
    cancelled = home.events.one("help_cancelled", "event")
    assert cancelled.body["held_s"] == pytest.approx(3.0, abs=0.1)
    assert cancelled.body["after_s"] == pytest.approx(20.35, abs=0.2)
    home.set("wrist", "button", "released")
    home.run(60)
    assert home.events.kinds() == ["help", "help_cancelled"]


def test_alarm_button_press_after_a_cancel_is_a_new_alarm_not_a_repeat(make_home):
    home = make_home()
    home.open("wrist")
    press(home, 0.3)
    home.run(5)
    press(home, 3.5)  # cancels
    home.run(5)  # still within a minute of the first alarm
    press(home, 0.3)  # the resident really needs help now
    assert home.events.kinds() == ["help", "help_cancelled", "help"]
    assert home.events.of("help")[1].body["repeat"] is False, "after a cancel there is nothing to repeat"


def test_alarm_button_second_short_press_within_the_window_is_another_help_with_repeat(make_home):
    home = make_home()
    home.open("wrist")
    press(home, 0.3)
    home.run(10)
    press(home, 0.5)
    assert [(e.kind, e.body["repeat"]) for e in home.events.of("help")] == [("help", False), ("help", True)]
    home.run(60)
    assert home.events.kinds() == ["help", "help"]


def test_alarm_button_second_press_released_just_before_the_hold_time_is_a_repeat_not_a_cancel(make_home):
    home = make_home()
    home.open("wrist")
    press(home, 0.3)
    home.run(10)
    home.set("wrist", "button", "pressed", settle=False)
    home.run(2.98)  # held 2.98 s, edge to edge: shorter than cancel_hold_s (3 s)
    press_end = home.clock.monotonic()
    home.set("wrist", "button", "released")
    assert home.clock.monotonic() - press_end < 0.1
    home.run(5)
    assert home.events.of("help_cancelled") == [], "a short second press cancelled the alarm"
    assert [e.body["repeat"] for e in home.events.of("help")] == [False, True]


def test_alarm_button_press_after_the_cancel_window_is_a_new_alarm_not_a_repeat(make_home):
    home = make_home()
    home.open("wrist")
    press(home, 0.3)
    home.run(61)  # cancel_within_s is 60
    press(home, 5.0)  # even a long press: too late to cancel, so a new alarm
    assert [e.body["repeat"] for e in home.events.of("help")] == [False, False]
    assert home.events.of("help_cancelled") == []


def test_alarm_button_without_cancelling_every_press_is_a_new_alarm(make_home):
    home = make_home(overrides={"buttons": {"wrist": {"cancel_within_s": 0}}})
    home.open("wrist")
    press(home, 0.3)
    home.run(5)
    press(home, 4.0)
    assert [e.body["repeat"] for e in home.events.of("help")] == [False, False]
    assert home.events.kinds() == ["help", "help"]


# -- motion -----------------------------------------------------------------------------------------

def motion(home: Home) -> None:
    home.set("hall", "motion", "motion")
    home.run(20)
    home.set("hall", "motion", "still")


def test_motion_no_movement_for_quiet_s_in_the_day_raises_inactivity(make_home):
    home = make_home(start=local("08:00", day=25))
    home.open("hall")
    motion(home)
    home.run(4 * 3600 - 60)
    assert home.events.alarms() == []
    home.run(90)
    alarm = home.events.one("inactivity", "alarm")
    assert alarm.body["quiet_limit_s"] == 4 * 3600
    assert alarm.body["quiet_s"] == pytest.approx(4 * 3600, abs=IDLE_S)
    home.run(3600)
    assert home.events.alarms() == ["inactivity"], "one alarm per quiet spell"


def test_motion_a_quiet_night_is_not_inactivity_quiet_counts_from_the_day_window_start(make_home):
    home = make_home()  # 22:00: the day window (07:00-22:00) has just closed
    home.open("hall")
    home.run_until(local("10:59", day=25))  # asleep all night, quiet until 11:00
    assert home.events.alarms() == [], "the night's sleep counted as inactivity"
    home.run_until(local("11:00:30", day=25))
    alarm = home.events.one("inactivity", "alarm")
    assert alarm.body["quiet_s"] == pytest.approx(4 * 3600, abs=IDLE_S)


def test_motion_after_an_inactivity_alarm_sends_activity_resumed(make_home):
    home = make_home(start=local("07:00", day=25))
    home.open("hall")
    home.run(5 * 3600)
    assert home.events.alarms() == ["inactivity"]
    motion(home)
    resumed = home.events.one("activity_resumed", "event")
    assert resumed.body["quiet_s"] == pytest.approx(5 * 3600, abs=IDLE_S)
    home.run(3600)  # quiet again, but not for 4 h
    motion(home)
    assert home.events.kinds() == ["inactivity", "activity_resumed"], "resumed once, not at every movement"
    home.run(4 * 3600 + 60)  # a new quiet spell is a new alarm
    assert home.events.kinds() == ["inactivity", "activity_resumed", "inactivity"]


def test_motion_with_regular_movement_raises_nothing(make_home):
    home = make_home(start=local("07:00", day=25))
    home.open("hall")
    for _ in range(14):
        home.run(3600 - 20)
        motion(home)
    assert home.events.alarms() == []


def test_motion_activity_summary_after_local_midnight_counts_per_hour(make_home):
    home = make_home(start=local("08:00", day=25))
    home.open("hall")
    home.run_until(local("08:15", day=25))
    motion(home)
    home.run_until(local("08:40", day=25))
    motion(home)
    home.run_until(local("14:05", day=25))
    motion(home)
    home.run_until(local("23:59:50", day=25))
    assert home.events.of("activity_summary") == []
    home.run(20)
    summary = home.events.one("activity_summary", "telemetry")
    expected = [0] * 24
    expected[8], expected[14] = 2, 1
    assert summary.body == {"motion": "hall", "date": "2026-11-25", "per_hour": expected, "total": 3}
    home.run_until(local("00:30", day=26))
    motion(home)
    home.run_until(local("23:59:59", day=26))
    assert len(home.events.of("activity_summary")) == 1, "one summary per day"


def test_motion_counts_survive_a_restart_through_the_state_store(make_home):
    home = make_home(start=local("09:00", day=25))
    hall = home.open("hall")
    assert isinstance(hall.state, MemoryState)
    motion(home)
    motion(home)
    home.close(hall)
    home.run_until(local("15:00", day=25))
    home.open("hall")
    motion(home)
    home.run_until(local("00:00:30", day=26))
    summary = home.events.one("activity_summary", "telemetry")
    assert summary.body["per_hour"][9] == 2 and summary.body["per_hour"][15] == 1
    assert summary.body["total"] == 3


def test_motion_counts_survive_a_daemon_restart_in_trust_db(tmp_path):
    path = tmp_path / "trust.db"
    trust = TrustDB(path)
    first = Home(tmp_path, start=local("09:00", day=25), trust=trust)
    hall = first.open("hall")
    assert isinstance(hall.state, DriverState)
    motion(first)
    motion(first)
    first.close()
    trust.close()

    trust = TrustDB(path)  # the daemon starts again, later the same day
    try:
        second = Home(tmp_path, trust=trust, clock=first.clock, factory=first.factory, world=first.world,
                      cfg=first.cfg)
        second.clock.wall = local("20:00", day=25)
        second.open("hall")
        motion(second)
        second.run_until(local("00:01", day=26))
        summary = second.events.one("activity_summary", "telemetry")
        assert summary.body["date"] == "2026-11-25"
        assert summary.body["per_hour"][9] == 2 and summary.body["per_hour"][20] == 1
        second.close()
    finally:
        trust.close()


def test_motion_a_restart_on_a_later_day_sends_the_saved_days_summary(tmp_path):
    state = MemoryState()
    state.save({"day": "2026-11-23", "per_hour": [1] * 24})
    home = Home(tmp_path, start=local("22:00"))  # the 24th: the saved day is over
    hall = next(d for d in build(home.cfg, home.events, home.clock, None, home.factory,
                                 after_open=home.world.after_open, data_dir=tmp_path).drivers if d.name == "hall")
    hall.state = state
    hall.open()
    try:
        hall.poll()
        summary = home.events.one("activity_summary", "telemetry")
        assert summary.body["date"] == "2026-11-23" and summary.body["total"] == 24
        assert state.load()["day"] == "2026-11-24" and state.load()["per_hour"] == [0] * 24
    finally:
        hall.close()

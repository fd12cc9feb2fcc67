"""The medicine dispenser on mock pins with a fake clock: reminder and dispense outputs, the "taken"
(cup removed), empty and jam sensors, the dose windows, the counts and the daily summary.

The simulated home's `kitchen` dispenser doses at 08:00, 13:00 and 22:00 (Stockholm), each with a
1 h window, late after 30 min; fill_count 28, warn_days 3, dispense pulse 1 s."""

import pytest

from agent.devices import DriverState
from agent.trustdb import TrustDB
from tests.support.homekit import Home, local, make_home  # noqa: F401 - fixture

MORNING = local("07:59:30", day=25)


def pulses(output) -> int:
    """How many times an output pin went on since its states were last cleared."""
    return sum(1 for s in output.pin.states[1:] if s.state)


def open_kitchen(home: Home):
    kitchen = home.open("kitchen", poll=False)
    kitchen.dispense.pin.clear_states()
    kitchen.reminder.pin.clear_states()
    kitchen.poll()
    return kitchen


def cup(home: Home, removed: bool = True) -> None:
    """The resident lifts the cup (or puts it back), in the sensor's own words."""
    words = home.driver("kitchen").INPUTS["taken"]
    home.set("kitchen", "taken", words[0] if removed else words[1])


def test_at_dose_time_the_reminder_goes_on_and_one_dose_is_dispensed(make_home):
    home = make_home(start=MORNING)
    kitchen = open_kitchen(home)
    home.run(20)
    assert kitchen.reminder.value == 0 and pulses(kitchen.dispense) == 0, "nothing before 08:00"
    home.run(20)  # 08:00:10: the runner looks at least every IDLE_S
    assert kitchen.reminder.value == 1
    assert [s.state for s in kitchen.dispense.pin.states] == [False, True, False], "one pulse, then off"
    assert kitchen.dispense.value == 0
    assert kitchen.s["left"] == 27
    home.run(20 * 60)
    assert pulses(kitchen.dispense) == 1, "a dose is dispensed once"
    assert home.events.kinds() == []


def test_dispense_pulse_lasts_dispense_pulse_s_on_the_drivers_clock(make_home):
    home = make_home(start=local("08:00", day=25), overrides={"dispensers": {"kitchen": {"dispense_pulse_s": 2.5}}})
    kitchen = home.open("kitchen", poll=False)
    before = home.clock.monotonic()
    kitchen.poll()
    assert home.clock.monotonic() - before == pytest.approx(2.5)
    assert kitchen.dispense.value == 0 and kitchen.reminder.value == 1


def test_cup_removed_within_the_window_is_dose_taken_and_the_reminder_goes_off(make_home):
    home = make_home(start=MORNING)
    kitchen = open_kitchen(home)
    home.run_until(local("08:10", day=25))
    cup(home)
    taken = home.events.one("dose_taken", "event")
    assert taken.body["dose"] == "08:00" and taken.body["late"] is False
    assert taken.body["after_s"] == pytest.approx(600, abs=2)
    assert kitchen.reminder.value == 0
    home.run_until(local("09:30", day=25))
    assert home.events.alarms() == [], "a taken dose must not be missed later"


def test_cup_removed_after_late_s_is_dose_taken_marked_late(make_home):
    home = make_home(start=MORNING)
    home.open("kitchen")
    home.run_until(local("08:45", day=25))
    cup(home)
    taken = home.events.one("dose_taken", "event")
    assert taken.body["late"] is True
    assert taken.body["after_s"] == pytest.approx(45 * 60, abs=2)


def test_window_passing_without_the_cup_removed_is_a_dose_missed_alarm(make_home):
    home = make_home(start=MORNING)
    kitchen = home.open("kitchen")
    home.run_until(local("08:59:30", day=25))
    assert home.events.alarms() == []
    home.run_until(local("09:00:15", day=25))
    missed = home.events.one("dose_missed", "alarm")
    assert missed.body == {"dispenser": "kitchen", "dose": "08:00", "window_s": 3600.0, "dispensed": True}
    assert kitchen.reminder.value == 0
    cup(home)  # taken too late to count: after the window it is not this dose
    home.run(600)
    assert home.events.kinds() == ["dose_missed"]


def test_cup_removed_before_the_dose_time_is_not_a_dose_taken(make_home):
    home = make_home(start=local("07:30", day=25))
    home.open("kitchen")
    cup(home)
    home.run(60)
    cup(home, removed=False)
    home.run_until(local("08:00:30", day=25))
    assert home.events.kinds() == []


def test_empty_and_jam_sensors_are_events(make_home):
    home = make_home(start=local("10:00", day=25))
    home.open("kitchen")
    home.set("kitchen", "empty", "empty")
    home.set("kitchen", "jam", "jammed")
    assert home.events.kinds() == ["dispenser_empty", "dispenser_jam"]
    assert home.events.one("dispenser_empty").body == {"dispenser": "kitchen", "doses_left": 28}
    home.set("kitchen", "jam", "ok")
    home.run(600)
    assert home.events.kinds() == ["dispenser_empty", "dispenser_jam"], "clearing is not another event"


def test_a_jammed_dispenser_does_not_dispense_at_dose_time_but_reminds_and_reports(make_home):
    home = make_home(start=local("07:50", day=25))
    kitchen = open_kitchen(home)
    home.set("kitchen", "jam", "jammed")
    home.run_until(local("08:00:15", day=25))
    assert pulses(kitchen.dispense) == 0, "a dose was dispensed into a jam"
    assert kitchen.s["left"] == 28
    assert kitchen.reminder.value == 1
    due = [e for e in home.events.of("dispenser_jam") if "dose" in e.body]
    assert len(due) == 1 and due[0].body["dose"] == "08:00"


def test_a_dose_not_dispensed_because_of_a_jam_is_never_reported_taken(make_home):
    home = make_home(start=local("07:50", day=25))
    kitchen = open_kitchen(home)
    home.set("kitchen", "jam", "jammed")
    home.run_until(local("08:00:15", day=25))
    home.set("kitchen", "jam", "ok")  # the nurse clears the jam at 08:05
    home.run_until(local("08:10", day=25))
    cup(home)  # the resident lifts the (empty) cup
    assert pulses(kitchen.dispense) >= 1 or not home.events.of("dose_taken"), \
        "dose_taken reported for a dose that was never dispensed"


def test_an_empty_dispenser_reports_the_dose_as_not_dispensed(make_home):
    home = make_home(start=local("07:50", day=25))
    kitchen = open_kitchen(home)
    home.set("kitchen", "empty", "empty")
    home.run_until(local("08:00:15", day=25))
    assert pulses(kitchen.dispense) == 0
    assert [e.body.get("detail") for e in home.events.of("dispenser_empty")] == [None, "dose due but not dispensed"]


def test_almost_empty_is_sent_once_when_days_left_reach_warn_days_until_a_refill(make_home):
    home = make_home(start=local("07:50", day=25))
    kitchen = home.open("kitchen")
    kitchen.refill(11)  # 3 doses a day: 11 -> 10 (3.3 days) at 08:00, 9 (3.0 days) at 13:00
    assert home.events.one("dispenser_refilled").body == {"dispenser": "kitchen", "doses_left": 11,
                                                          "days_left": 3.7}
    home.run_until(local("08:05", day=25))
    assert home.events.of("almost_empty") == []
    cup(home)
    home.run_until(local("13:05", day=25))
    warn = home.events.one("almost_empty", "event")
    assert warn.body == {"dispenser": "kitchen", "doses_left": 9, "days_left": 3.0}
    cup(home, removed=False)
    home.run_until(local("22:05", day=25))
    assert kitchen.s["left"] == 8
    assert len(home.events.of("almost_empty")) == 1, "warned again before a refill"


def test_refill_resets_the_count_and_the_warning(make_home):
    home = make_home(start=local("07:50", day=25))
    kitchen = home.open("kitchen")
    kitchen.refill(10)
    home.run_until(local("08:05", day=25))
    assert len(home.events.of("almost_empty")) == 1
    answer = kitchen.refill()
    assert answer == {"doses_left": 28, "days_left": 9.3}
    assert kitchen.s["left"] == 28
    kitchen.refill(8)
    home.run_until(local("13:05", day=25))
    assert len(home.events.of("almost_empty")) == 2, "the warning was not re-armed by the refill"
    assert [e.body["doses_left"] for e in home.events.of("dispenser_refilled")] == [10, 28, 8]


def test_dose_summary_after_midnight_counts_the_day(make_home):
    home = make_home(start=MORNING)
    home.open("kitchen")
    home.run_until(local("08:05", day=25))
    cup(home)  # 08:00 taken
    cup(home, removed=False)
    home.run_until(local("13:40", day=25))
    cup(home)  # 13:00 taken late
    cup(home, removed=False)
    home.set("kitchen", "empty", "empty")  # a fault
    home.set("kitchen", "empty", "ok")
    home.run_until(local("23:59:50", day=25))  # 22:00 missed at 23:00
    assert home.events.of("dose_summary") == []
    home.run(20)
    summary = home.events.one("dose_summary", "telemetry")
    assert summary.body == {"dispenser": "kitchen", "date": "2026-11-25", "taken": 1, "late": 1, "missed": 1,
                            "faults": 1, "power_interruptions": 0, "doses_left": 25, "days_left": 8.3}
    home.run_until(local("07:59", day=26))
    assert len(home.events.of("dose_summary")) == 1


def test_a_start_that_finds_the_store_still_running_counts_a_power_interruption(make_home):
    before = make_home(start=local("10:00", day=25))
    state = before.open("kitchen").state
    assert state.load()["running"] is True
    # the power goes: no close(); the Pi boots again five minutes later
    after = make_home(start=local("10:05", day=25))
    after.driver("kitchen").state = state
    after.open("kitchen")
    after.run_until(local("00:00:20", day=26))
    summaries = after.events.of("dose_summary")
    assert len(summaries) == 1 and summaries[0].body["power_interruptions"] == 1


def test_a_clean_restart_is_not_a_power_interruption(make_home):
    home = make_home(start=local("10:00", day=25))
    kitchen = home.open("kitchen")
    home.close(kitchen)
    assert kitchen.state.load()["running"] is False
    home.open("kitchen")
    home.run_until(local("00:00:20", day=26))
    assert home.events.one("dose_summary").body["power_interruptions"] == 0


def test_a_restart_inside_an_open_dose_window_keeps_the_dose_without_dispensing_it_again(make_home):
    home = make_home(start=MORNING)
    kitchen = open_kitchen(home)
    home.run_until(local("08:10", day=25))
    assert pulses(kitchen.dispense) == 1
    home.close(kitchen)
    home.run(60)
    kitchen = home.open("kitchen", poll=False)
    assert kitchen.reminder.value == 1, "the reminder comes back on for the open dose"
    kitchen.dispense.pin.clear_states()
    home.run(60)
    assert pulses(kitchen.dispense) == 0, "dispensed a second time after a restart"
    cup(home)
    assert home.events.one("dose_taken").body["dose"] == "08:00"


def test_a_restart_after_the_dose_was_taken_does_not_dispense_it_again(make_home):
    home = make_home(start=MORNING)
    kitchen = home.open("kitchen")
    home.run_until(local("08:05", day=25))
    cup(home)
    home.close(kitchen)
    kitchen = open_kitchen(home)
    home.run_until(local("09:30", day=25))
    assert pulses(kitchen.dispense) == 0
    assert home.events.kinds() == ["dose_taken"]


def test_a_start_inside_a_dose_window_still_dispenses_that_dose(make_home):
    home = make_home(start=local("08:20", day=25))  # the Pi came up late
    kitchen = open_kitchen(home)
    home.run(20)
    assert pulses(kitchen.dispense) == 1 and kitchen.reminder.value == 1


def test_a_dose_window_crossing_midnight_is_judged_after_midnight_and_dispensed_once(make_home):
    home = make_home(start=local("23:29", day=24),
                     overrides={"dispensers": {"kitchen": {"doses": [{"time": "23:30", "window_s": 3600}]}}})
    kitchen = open_kitchen(home)
    home.run_until(local("23:31", day=24))
    assert pulses(kitchen.dispense) == 1
    home.run_until(local("00:20", day=25))
    assert home.events.alarms() == [], "the window lasts until 00:30"
    assert kitchen.reminder.value == 1
    home.run_until(local("00:31", day=25))
    assert home.events.one("dose_missed", "alarm").body["dose"] == "23:30"
    assert kitchen.reminder.value == 0
    home.run_until(local("23:00", day=25))
    assert pulses(kitchen.dispense) == 1, "yesterday's dose was dispensed again after midnight"
    home.run_until(local("00:31", day=26))
    assert pulses(kitchen.dispense) == 2, "the next night's dose"
    missed = sum(e.body["missed"] for e in home.events.of("dose_summary"))
    assert missed == 1, "the missed dose must be counted in exactly one day's summary"


def test_a_start_after_midnight_inside_yesterdays_dose_window_dispenses_that_dose_once(make_home):
    home = make_home(start=local("00:10", day=25),
                     overrides={"dispensers": {"kitchen": {"doses": [{"time": "23:30", "window_s": 3600}]}}})
    kitchen = open_kitchen(home)
    home.run(20)
    assert pulses(kitchen.dispense) == 1 and kitchen.reminder.value == 1, "the 23:30 dose is still due at 00:10"
    cup(home)
    taken = home.events.one("dose_taken")
    assert taken.body["after_s"] == pytest.approx(40 * 60, abs=30)
    home.run_until(local("23:29", day=25))
    assert pulses(kitchen.dispense) == 1
    home.run_until(local("23:31", day=25))
    assert pulses(kitchen.dispense) == 2, "tonight's dose is a new dose"


def test_a_dose_crossing_midnight_taken_after_midnight_is_dose_taken(make_home):
    home = make_home(start=local("23:29", day=24),
                     overrides={"dispensers": {"kitchen": {"doses": [{"time": "23:30", "window_s": 3600}]}}})
    home.open("kitchen")
    home.run_until(local("00:15", day=25))
    cup(home)
    taken = home.events.one("dose_taken")
    assert taken.body["late"] is True and taken.body["after_s"] == pytest.approx(45 * 60, abs=2)


def test_dispenser_counts_survive_a_restart_in_trust_db(tmp_path):
    path = tmp_path / "trust.db"
    trust = TrustDB(path)
    first = Home(tmp_path, start=MORNING, trust=trust)
    kitchen = first.open("kitchen")
    assert isinstance(kitchen.state, DriverState)
    first.run_until(local("08:05", day=25))
    cup(first)
    first.close()
    trust.close()

    trust = TrustDB(path)
    try:
        second = Home(tmp_path, trust=trust, clock=first.clock, factory=first.factory, world=first.world,
                      cfg=first.cfg)
        kitchen = second.open("kitchen")
        assert kitchen.s["left"] == 27
        second.run_until(local("00:00:20", day=26))
        summary = second.events.one("dose_summary").body
        assert summary["taken"] == 1 and summary["power_interruptions"] == 0
        second.close()
    finally:
        trust.close()


def test_a_fault_counted_before_a_power_cut_is_in_the_days_summary(tmp_path):
    path = tmp_path / "trust.db"
    trust = TrustDB(path)
    first = Home(tmp_path, start=local("10:00", day=25), trust=trust)
    first.open("kitchen")
    first.set("kitchen", "jam", "jammed")  # a jam at 10:00, cleared by a nurse
    first.set("kitchen", "jam", "ok")
    first.run(60)
    trust.close()  # the power goes at 10:01: no close(), nothing more is written

    trust = TrustDB(path)
    try:
        second = Home(tmp_path, start=local("10:10", day=25), trust=trust)
        second.open("kitchen")
        second.run_until(local("00:00:20", day=26))
        summary = second.events.one("dose_summary").body
        assert summary["power_interruptions"] == 1
        assert summary["faults"] == 1, "the 10:00 jam was forgotten by the power cut"
        second.close()
    finally:
        trust.close()

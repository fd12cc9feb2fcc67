"""Door and medicine-cabinet locks on mock pins: the SimWorld connects each relay to its bolt sensor
(a working lock) unless the test jams it. front-door has a door_alarm window 22:00-07:00;
medicine-cabinet has none. Default timings: debounce 0.1 s, confirm 3 s, relock_after 60 s,
relock_delay 3 s."""

import pytest

from drivers.lock import LockError, LockJammed
from tests.support.homekit import Home, assert_not_spinning, local, make_home  # noqa: F401 - fixture


def relay_history(lock) -> list[bool]:
    """The relay pin's levels since its states were last cleared (MockPin records each change)."""
    return [s.state for s in lock.relay.pin.states]


def door(home: Home, lock: str, word: str) -> None:
    home.set(lock, "door", word)


def test_lock_starts_locked_with_relay_off_and_door_closed(make_home):
    home = make_home()
    lock = home.open("front-door")
    assert lock.state == "locked"
    assert lock.relay.value == 0
    health = lock.health()
    assert health["inputs"] == {"bolt": "thrown", "door": "closed"}
    assert health["state"] == "locked" and health["jammed"] is None and health["visit"] is False
    home.run(120)
    assert home.events.kinds() == []


def test_unlock_switches_the_relay_and_confirms_that_the_bolt_moved(make_home):
    home = make_home()
    lock = home.open("front-door")
    result = lock.unlock("anna")
    assert result["state"] == "unlocked"
    assert 0.1 <= result["confirmed_s"] <= 0.2, "confirmed after the bolt sensor's debounce (0.1 s)"
    assert result["relock_after_s"] == 60.0
    assert lock.relay.value == 1
    assert lock.bolt.stable is False and lock.state == "unlocked"
    assert lock.health()["visit"] is True
    home.run(1)
    assert home.events.kinds() == [], "a staff unlock is not a manual unlock"


def test_unlock_of_a_jammed_bolt_is_a_lock_fault_and_the_relay_is_switched_off(make_home):
    home = make_home()
    lock = home.open("front-door")
    home.world.jam("front-door")
    started = home.clock.monotonic()
    with pytest.raises(LockError) as failed:
        lock.unlock("anna")
    assert not isinstance(failed.value, LockJammed), "the first try is a real attempt, not a refusal"
    assert home.clock.monotonic() - started == pytest.approx(3.0, abs=0.05), "gave up after confirm_s"
    fault = home.events.one("lock_fault", "event")
    assert fault.body["action"] == "unlock" and "did not retract" in fault.body["detail"]
    assert lock.relay.value == 0, "the actuator must not stay powered against a stuck bolt"
    assert relay_history(lock) == [False, True, False]
    assert lock.state == "jammed" and lock.health()["jammed"]


def test_a_jammed_lock_refuses_later_unlocks_without_switching_the_relay(make_home):
    home = make_home()
    lock = home.open("front-door")
    home.world.jam("front-door")
    with pytest.raises(LockError):
        lock.unlock("anna")
    lock.relay.pin.clear_states()
    before = home.clock.monotonic()
    with pytest.raises(LockJammed, match="jammed"):
        lock.unlock("bertil")
    assert relay_history(lock) == [False], "a jammed lock was switched again"
    assert lock.relay.value == 0
    assert home.clock.monotonic() == before, "refused at once, without waiting for the bolt"
    assert home.events.kinds() == ["lock_fault"]


def test_a_jammed_lock_works_again_once_its_bolt_is_seen_to_move(make_home):
    home = make_home()
    lock = home.open("front-door")
    home.world.jam("front-door")
    with pytest.raises(LockError):
        lock.unlock("anna")
    home.world.jam("front-door", False)  # the technician frees it and turns the bolt
    home.set("front-door", "bolt", "retracted")
    home.set("front-door", "bolt", "thrown")
    assert "fault_cleared" in home.events.kinds()
    assert lock.state == "locked"
    assert lock.unlock("anna")["state"] == "unlocked"
    assert lock.bolt.stable is False


def test_staff_visit_relocks_after_the_door_was_opened_and_closed_and_records_the_visit(make_home):
    home = make_home()  # 22:00: inside the door_alarm window, but staff are expected
    lock = home.open("front-door")
    lock.unlock("anna")
    home.run(5)
    door(home, "front-door", "open")
    home.run(120)  # nobody relocks an open door, whatever relock_after_s says
    assert lock.state == "unlocked"
    door(home, "front-door", "closed")
    home.run(2.5)
    assert lock.state == "unlocked", "relocked before relock_delay_s (3 s)"
    home.run(1)
    assert lock.state == "locked" and lock.relay.value == 0
    visit = home.events.one("visit", "event")
    assert visit.body["staff"] == "anna"
    assert visit.body["door_opened"] is True and visit.body["ended"] == "relocked"
    assert visit.body["duration_s"] == pytest.approx(128.5, abs=1.0)
    assert visit.body["started"].startswith("2026-11-24T22:00")
    assert home.events.alarms() == [], "staff opening the door at night is not a door_open alarm"
    assert home.events.kinds() == ["visit"]
    assert lock.health()["visit"] is False


def test_unlocked_door_never_opened_relocks_after_relock_after_s(make_home):
    home = make_home()
    lock = home.open("front-door")
    lock.unlock("anna")
    home.run(59)
    assert lock.state == "unlocked"
    home.run(2)
    assert lock.state == "locked" and lock.relay.value == 0
    visit = home.events.one("visit", "event")
    assert visit.body["door_opened"] is False
    assert visit.body["duration_s"] == pytest.approx(60, abs=1)


def test_a_second_unlock_during_a_visit_gives_more_time_and_one_visit(make_home):
    home = make_home()
    lock = home.open("front-door")
    lock.unlock("anna")
    home.run(50)
    assert lock.unlock("anna") == {"state": "unlocked", "already": True}
    home.run(50)  # 100 s after the first unlock, 50 after the second
    assert lock.state == "unlocked"
    home.run(15)
    assert lock.state == "locked"
    assert len(home.events.of("visit")) == 1


def test_lock_is_refused_while_the_door_is_open(make_home):
    home = make_home()
    lock = home.open("front-door")
    lock.unlock("anna")
    door(home, "front-door", "open")
    with pytest.raises(LockError, match="door is open"):
        lock.lock("anna")
    assert lock.relay.value == 1 and lock.state == "unlocked"
    door(home, "front-door", "closed")
    assert lock.lock("anna")["state"] == "locked"
    visit = home.events.one("visit", "event")
    assert visit.body["ended"] == "locked by command" and visit.body["locked_by"] == "anna"


def test_bolt_thrown_by_hand_during_a_visit_ends_it_and_switches_the_relay_off(make_home):
    home = make_home()
    lock = home.open("front-door")
    lock.unlock("anna")
    home.run(10)
    home.set("front-door", "bolt", "thrown")
    assert lock.relay.value == 0
    assert home.events.one("visit", "event").body["ended"] == "locked by hand"
    assert lock.state == "locked"


def test_bolt_turned_by_hand_from_inside_is_a_manual_unlock_and_is_not_relocked(make_home):
    home = make_home(start=local("14:00"))
    lock = home.open("front-door")
    lock.relay.pin.clear_states()
    home.set("front-door", "bolt", "retracted")
    manual = home.events.one("manual_unlock", "event")
    assert manual.body["lock"] == "front-door"
    assert lock.state == "unlocked"
    door(home, "front-door", "open")
    home.run(30)
    door(home, "front-door", "closed")
    home.run(30 * 60)  # nobody is locked out in the cold
    assert lock.state == "unlocked"
    assert relay_history(lock) == [False], "the lock switched its relay after a manual opening"
    assert home.events.kinds() == ["manual_unlock", "door_open", "door_closed"]
    assert home.events.one("door_closed").body["open_s"] == pytest.approx(30, abs=0.5)


def test_door_opened_at_night_without_staff_is_a_door_open_alarm(make_home):
    home = make_home(start=local("03:00", day=25))
    home.open("front-door")
    home.set("front-door", "bolt", "retracted")
    door(home, "front-door", "open")
    alarm = home.events.one("door_open", "alarm")
    assert alarm.body == {"lock": "front-door", "by": "inside", "night": True}
    assert home.events.kinds() == ["manual_unlock", "door_open"]


def test_door_opened_in_the_day_without_staff_is_only_an_event(make_home):
    home = make_home(start=local("14:00"))
    home.open("front-door")
    home.set("front-door", "bolt", "retracted")
    door(home, "front-door", "open")
    assert home.events.alarms() == []
    assert home.events.one("door_open", "event").body["night"] is False


def test_medicine_cabinet_opened_at_night_is_never_a_door_open_alarm(make_home):
    home = make_home()  # 22:00
    cabinet = home.open("medicine-cabinet")
    assert not cabinet.cfg.door_alarm
    home.set("medicine-cabinet", "bolt", "retracted")
    door(home, "medicine-cabinet", "open")
    assert home.events.alarms() == []
    assert home.events.one("door_open", "event").body == {"lock": "medicine-cabinet", "by": "inside",
                                                          "night": False}


def test_medicine_cabinet_is_never_a_door_open_alarm_even_with_an_unsynchronized_clock(make_home):
    home = make_home(synced=False)  # unknown local time counts as inside every schedule ...
    home.open("medicine-cabinet")
    home.set("medicine-cabinet", "bolt", "retracted")
    door(home, "medicine-cabinet", "open")
    assert home.events.alarms() == [], "... but a lock without door_alarm windows has no schedule to be inside"


def test_front_door_opened_with_an_unsynchronized_clock_is_an_alarm(make_home):
    home = make_home(start=local("14:00"), synced=False)
    home.open("front-door")
    home.set("front-door", "bolt", "retracted")
    door(home, "front-door", "open")
    assert home.events.one("door_open", "alarm").body["night"] is True


def test_relock_against_a_jammed_bolt_is_a_lock_fault_and_leaves_the_relay_off(make_home):
    home = make_home()
    lock = home.open("front-door")
    lock.unlock("anna")
    home.world.jam("front-door")  # the bolt sticks while retracted
    home.run(70)
    fault = home.events.one("lock_fault", "event")
    assert fault.body["action"] == "lock"
    assert lock.relay.value == 0 and lock.state == "jammed"
    home.run(300)
    assert len(home.events.of("lock_fault")) == 1, "a failed relock is tried once, not over and over"


def test_lock_state_is_read_again_from_the_sensors_after_a_restart(make_home):
    home = make_home(start=local("14:00"))
    lock = home.open("front-door")
    home.set("front-door", "bolt", "retracted")
    home.close(lock)
    lock = home.open("front-door")
    assert lock.state == "unlocked", "the bolt's physical state is kept by the world across a restart"
    home.run(5)
    assert home.events.kinds() == ["manual_unlock"], "the first reading after a restart is not a movement"


def test_unlock_and_lock_are_refused_while_the_lock_driver_is_not_running(make_home):
    home = make_home()
    lock = home.open("front-door")
    home.close(lock)
    with pytest.raises(LockError, match="not running"):
        lock.unlock("anna")
    with pytest.raises(LockError, match="not running"):
        lock.lock("anna")
    assert home.events.kinds() == []


def test_a_lock_command_while_the_door_opens_at_night_does_not_swallow_the_door_open_alarm(make_home):
    home = make_home(start=local("03:00", day=25))
    lock = home.open("front-door")
    home.set("front-door", "bolt", "retracted")  # the resident turns the bolt ...
    home.set("front-door", "door", "open", settle=False)  # ... and opens the door
    home.clock.advance(0.15)  # past the debounce, before the runner's next poll
    with pytest.raises(LockError):
        lock.lock("night-nurse")  # a nurse, seeing manual_unlock, tries to lock remotely
    home.run(1)
    assert home.events.of("door_open", "alarm"), "the resident left at night and nobody was told"


def test_after_a_restart_during_a_visit_a_night_door_opening_is_still_an_alarm(make_home):
    home = make_home()  # 22:00
    lock = home.open("front-door")
    lock.unlock("anna")
    home.run(5)
    home.close(lock)  # the driver crashes; the runner closes and opens it again
    lock = home.open("front-door")
    assert lock.state == "locked", "reopened with the relay off: the bolt is thrown"
    home.run_until(local("03:00", day=25))
    home.set("front-door", "bolt", "retracted")
    door(home, "front-door", "open")
    assert home.events.of("door_open", "alarm"), "the resident left at night and nobody was told"


def test_a_second_unlock_with_the_door_open_does_not_make_the_runner_spin(make_home):
    home = make_home()
    lock = home.open("front-door")
    lock.unlock("anna")
    door(home, "front-door", "open")
    home.run(10)
    assert lock.unlock("bertil")["already"] is True  # a colleague arrives while the door stands open
    home.run(120)
    assert_not_spinning(home, lock)


def test_a_second_unlock_with_the_door_open_still_relocks_after_the_door_closes(make_home):
    home = make_home()
    lock = home.open("front-door")
    lock.unlock("anna")
    door(home, "front-door", "open")
    home.run(10)
    lock.unlock("bertil")
    home.run(120)
    assert lock.state == "unlocked", "locked while the door was open"
    door(home, "front-door", "closed")
    home.run(5)
    assert lock.state == "locked"
    assert home.events.one("visit").body["staff"] == "anna"

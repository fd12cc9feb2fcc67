"""Look-in rounds at the center: when a look-in fails, a person goes.

The rules (center/rounds.py) on a fake clock; the sealed store and alert-once (roundsdesk.py)
on real SQLite files with throwaway center keys; the receiver fed real sealed envelopes; the
CLI in-process on a real center config; and one run of `trygg center watch` against the real
broker, restarted, showing each alert once.
"""

import json
import re
import threading
import traceback
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from center.config import CenterConfig
from center import config as center_config
from agent.cli import main
from base.keys import Identity, load_private, write_private, write_public
from protocol import envelope, topics
from protocol.ids import is_valid_id, new_id
from protocol.messages import EventMessage, encode
from center import rounds
from center.console import alert_line
from center.printer import Printer
from center.wording import Words
from center.homes import HomeRegistry
from center.receiver import OutputFailed, Receiver
from center.rounds import Known, Record, RoundsError
from center.roundsdesk import RoundsDesk, center_keys
from center.service import case_desk
from center.store import EventStore
from tests.support.fakes import FakeClock
from tests.support.lab import edit_toml

STO = ZoneInfo("Europe/Stockholm")
HOME = "home-7"
NIGHT = "2025-01-10"
PLAN = {"camera": "synthetic", "timezone": "Europe/Stockholm", "times": ["23:00", "03:00"], "tolerance_s": 900.0,
        "windows": [{"start": "22:00", "end": "06:00", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}],
        "max_per_night": 2, "privacy": "blur", "roles": ["night-staff"]}


def local(day: str, hhmm: str, zone=STO) -> datetime:
    """A local wall time in the zone, as UTC."""
    return datetime.fromisoformat(f"{day}T{hhmm}").replace(tzinfo=zone).astimezone(timezone.utc)


def evening(hhmm: str) -> datetime:
    return local(NIGHT, hhmm)


def morning(hhmm: str) -> datetime:
    return local("2025-01-11", hhmm)


def slot(now: datetime, records=(), known: Known = Known(), which: str = "23:00", plan: dict = PLAN,
         night: str = NIGHT) -> rounds.Slot:
    found = rounds.slots(HOME, rounds.parse_plan(plan), night, list(records), known, now, 600.0)
    return next(s for s in found if s.time == which)


def rec(verdict: str, at: datetime, which: str = "23:00", reason: str = "") -> Record:
    return Record(which, verdict, "anna", at, reason)


# -- the rules, on a fake clock ----------------------------------------------------------------


def test_a_look_in_is_upcoming_until_the_tolerance_before_it_then_due():
    before = slot(evening("22:44:59"))
    assert (before.state, before.next_text) == ("upcoming", "due at 22:45")
    due = slot(evening("22:45"))
    assert (due.state, due.next_text) == ("due", "look in by 23:15")
    assert due.at == datetime(2025, 1, 10, 22, 0, tzinfo=timezone.utc)


def test_the_nights_slots_come_in_the_order_they_happen():
    found = rounds.slots(HOME, rounds.parse_plan(PLAN), NIGHT, [], Known(), evening("20:00"), 600)
    assert [s.time for s in found] == ["23:00", "03:00"]
    assert found[1].at == datetime(2025, 1, 11, 2, 0, tzinfo=timezone.utc)  # the morning after


def test_seen_closes_the_look_in_for_the_night():
    done = slot(morning("04:00"), [rec("seen", evening("22:50"))], Known(reachable=False, camera_fault="gone"))
    assert (done.state, done.by) == ("seen", "anna")


def test_not_seen_means_look_again_after_retry_after():
    records = [rec("not_seen", evening("23:05"))]
    waiting = slot(evening("23:14:59"), records)
    assert (waiting.state, waiting.next_text) == ("not_seen", "look again at 23:15")
    again = slot(evening("23:15"), records)
    assert (again.state, again.next_text) == ("retry_due", "look again by 23:30")


def test_not_seen_on_the_retry_needs_a_physical_visit():
    records = [rec("not_seen", evening("23:05")), rec("not_seen", evening("23:16"))]
    visit = slot(evening("23:16"), records)
    assert (visit.state, visit.reason, visit.next) == ("visit_needed", "not seen on retry", "go in person")


def test_seen_on_the_retry_closes_the_look_in():
    assert slot(evening("23:40"), [rec("not_seen", evening("23:05")), rec("seen", evening("23:16"))]).state == "seen"


def test_a_retry_nobody_did_needs_a_visit():
    records = [rec("not_seen", evening("23:05"))]
    assert slot(evening("23:29:59"), records).state == "retry_due"
    late = slot(evening("23:30"), records)
    assert (late.state, late.reason) == ("visit_needed", "retry not done in time")


def test_a_look_in_nobody_recorded_in_time_needs_a_visit():
    assert slot(evening("23:14:59")).state == "due"
    late = slot(evening("23:15"))
    assert (late.state, late.reason) == ("visit_needed", "look-in not done in time")


def test_an_unreachable_home_needs_a_visit_once_its_look_in_is_due():
    assert slot(evening("22:30"), known=Known(reachable=False)).state == "upcoming"  # not yet
    visit = slot(evening("22:45"), known=Known(reachable=False))
    assert (visit.state, visit.reason) == ("visit_needed", "home unreachable")
    assert slot(evening("22:45"), known=Known(reachable=None)).state == "due"  # unknown is no reason
    waiting = slot(evening("23:10"), [rec("not_seen", evening("23:05"))], Known(reachable=False))
    assert (waiting.state, waiting.reason) == ("visit_needed", "home unreachable")


def test_a_camera_fault_while_a_look_in_is_due_needs_a_visit():
    assert slot(evening("22:00"), known=Known(camera_fault="no frames")).state == "upcoming"
    visit = slot(evening("22:50"), known=Known(camera_fault="no frames"))
    assert (visit.state, visit.reason) == ("visit_needed", "camera fault: no frames")
    assert slot(evening("22:50"), known=Known(camera_fault="")).reason == "camera fault"


def test_a_failed_look_in_needs_a_visit():
    visit = slot(evening("22:51"), [rec("failed", evening("22:50"), reason="camera did not open")])
    assert (visit.state, visit.reason) == ("visit_needed", "look-in failed: camera did not open")


def test_a_visit_once_called_stands_until_someone_sees_the_resident():
    called = Known(reachable=True, visits={"23:00": "home unreachable"})
    standing = slot(evening("22:50"), known=called)
    assert (standing.state, standing.reason) == ("visit_needed", "home unreachable")
    assert slot(evening("23:20"), [rec("seen", evening("23:20"))], called).state == "seen"


def test_a_home_without_camera_or_agreed_times_has_no_rounds():
    for plan in ({**PLAN, "camera": "none"}, {**PLAN, "times": []}):
        assert rounds.slots(HOME, rounds.parse_plan(plan), NIGHT, [], Known(), evening("23:00"), 600) == []


def test_the_night_changes_at_noon_local_time():
    plan = rounds.parse_plan(PLAN)
    assert rounds.tonight(plan, morning("11:59:59")) == NIGHT
    assert rounds.tonight(plan, morning("12:00")) == "2025-01-11"


@pytest.mark.parametrize("night, hhmm, utc", [
    ("2025-03-29", "23:00", "2025-03-29T22:00"),  # still winter time
    ("2025-03-29", "02:30", "2025-03-30T01:30"),  # skipped by the spring change: happens at 03:30 summer time
    ("2025-03-29", "03:00", "2025-03-30T01:00"),  # summer time
    ("2025-10-25", "23:00", "2025-10-25T21:00"),  # summer time
    ("2025-10-25", "02:30", "2025-10-26T00:30"),  # repeated by the autumn change: the first one
    ("2025-10-25", "03:00", "2025-10-26T02:00"),  # winter time
])
def test_slot_times_follow_the_homes_clock_across_daylight_saving(night, hhmm, utc):
    assert rounds.slot_moment(night, hhmm, STO) == datetime.fromisoformat(utc).replace(tzinfo=timezone.utc)


def test_a_look_in_on_the_spring_night_falls_due_on_the_real_clock():
    plan = {**PLAN, "times": ["03:00"]}
    at = datetime(2025, 3, 30, 1, 0, tzinfo=timezone.utc)  # 03:00 summer time
    assert slot(at - timedelta(minutes=15, seconds=1), which="03:00", plan=plan, night="2025-03-29").state == "upcoming"
    assert slot(at - timedelta(minutes=15), which="03:00", plan=plan, night="2025-03-29").state == "due"


@pytest.mark.parametrize("change, where", [
    ({"times": ["24:00"]}, "times.0"),
    ({"times": ["3:00"]}, "times.0"),
    ({"times": "23:00"}, "times"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"tolerance_s": -1}, "tolerance_s"),
    ({"tolerance_s": True}, "tolerance_s"),
    ({"tolerance_s": "900"}, "tolerance_s"),
    ({"camera": "webcam"}, "camera"),
    ({"max_per_night": 2.5}, "max_per_night"),
    ({"roles": ["Night Staff"]}, "roles.0"),
    ({"windows": [{"start": "22:00"}]}, "windows.0.end"),
    ({"surprise": 1}, "surprise"),
    ({"times": ["23:00"] * 25}, "times"),
])
def test_a_bad_plan_is_refused_with_what_is_wrong(change, where):
    with pytest.raises(ValueError) as caught:
        rounds.parse_plan({**PLAN, **change})
    assert str(caught.value).startswith(where + ":")
    assert "\n" not in str(caught.value)


def test_a_plan_missing_a_field_is_refused():
    with pytest.raises(ValueError, match="^times: "):
        rounds.parse_plan({k: v for k, v in PLAN.items() if k != "times"})


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(PLAN)), JSON)
def test_any_value_in_a_plan_is_accepted_or_refused_never_a_crash(key, value):
    try:
        plan = rounds.parse_plan({**PLAN, key: value})
    except ValueError:
        return
    rounds.slots(HOME, plan, NIGHT, [], Known(), evening("23:00"), 600)  # what is accepted works


@settings(max_examples=200, deadline=None)
@given(JSON)
def test_any_body_is_a_plan_or_refused_never_a_crash(body):
    with pytest.raises(ValueError):
        rounds.parse_plan(body)


def test_verdicts_go_to_the_open_look_in_or_are_refused():
    plan = rounds.parse_plan({**PLAN, "times": ["23:00", "23:10", "03:00"]})
    tonight = rounds.slots(HOME, plan, NIGHT, [], Known(), evening("22:58"), 600)
    with pytest.raises(RoundsError, match="several look-ins are open .23:00, 23:10."):
        rounds.pick(tonight, "seen", None)
    assert rounds.pick(tonight, "seen", "23:10").time == "23:10"
    with pytest.raises(RoundsError, match="03:00 look-in is not due yet .due at 02:45."):
        rounds.pick(tonight, "seen", "03:00")
    with pytest.raises(RoundsError, match="not an agreed look-in time"):
        rounds.pick(tonight, "seen", "04:00")
    with pytest.raises(RoundsError, match="expected a time as HH:MM"):
        rounds.pick(tonight, "seen", "25:61")
    early = rounds.slots(HOME, plan, NIGHT, [], Known(), evening("20:00"), 600)
    with pytest.raises(RoundsError, match=r"no look-in is due now \(next: 23:00, due at 22:45\)"):
        rounds.pick(early, "not_seen", None)


# -- the desk: sealed in center.db, once per alert ---------------------------------------------


@pytest.fixture
def center_key() -> Identity:
    return Identity.generate("center")


def open_desk(tmp_path: Path, key: Identity, retry_after_s: float = 600.0) -> RoundsDesk:
    return RoundsDesk(EventStore(tmp_path / "center.db"), [key], retry_after_s)


def event(kind: str, body: dict, at: datetime, home: str = HOME, cls: str = "event",
          synced: bool = True) -> EventMessage:
    return EventMessage.model_validate({"id": new_id(), "home": home, "class": cls, "kind": kind, "time": at,
                                        "clock_synced": synced, "body": body})


def plan_event(at: datetime = evening("21:00"), home: str = HOME, **change) -> EventMessage:
    return event("lookin_plan", {**PLAN, **change}, at, home)


def states(desk: RoundsDesk, now: datetime, reachable=lambda home: None) -> dict[str, tuple[str, str]]:
    return {s.time: (s.state, s.reason) for s in desk.tonight(now, reachable) if s.home == HOME}


def test_plans_verdicts_and_faults_are_sealed_in_center_db(tmp_path, center_key):
    with open_desk(tmp_path, center_key) as desk:
        desk.observe(plan_event(), 0)
        desk.observe(event("fault", {"component": "camera", "detail": "lens covered by cloth"}, evening("22:40")), 0)
        desk.observe(event("fault_cleared", {"component": "camera"}, evening("22:41")), 0)
        desk.record(HOME, "not_seen", "annika-natt", evening("22:50"))
        desk.record(HOME, "not_seen", "annika-natt", evening("22:51"))
        for alert in desk.new_alerts(evening("22:52")):
            desk.mark_shown(alert)
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("center.db*"))
    for secret in (b"annika-natt", b"not_seen", b"not seen on retry", b"lens covered", b"Europe/Stockholm",
                   b"night-staff", b"blur"):
        assert secret not in raw, secret
    store = EventStore(tmp_path / "center.db")
    try:
        assert len(store.lookin_records(NIGHT)) == 2  # they are there, only sealed
        assert [row[:3] for row in store.lookin_alerts(NIGHT)] == [(HOME, "23:00", "visit_needed")]
    finally:
        store.close()


def test_the_rounds_survive_a_restart(tmp_path, center_key):
    with open_desk(tmp_path, center_key) as desk:
        desk.observe(plan_event(), 0)
        desk.record(HOME, "not_seen", "anna", evening("22:50"))
        desk.observe(event("fault", {"component": "camera", "detail": "no frames"}, evening("22:52")), 0)
    with open_desk(tmp_path, center_key) as desk:
        [first, _] = desk.tonight(evening("22:55"))
        assert (first.time, first.state, first.reason) == ("23:00", "visit_needed", "camera fault: no frames")
        assert first.by == "anna"
        desk.observe(event("fault_cleared", {"component": "camera"}, evening("22:56")), 0)
        assert states(desk, evening("22:57"))["23:00"] == ("not_seen", "")


def test_a_desk_sealed_to_another_center_key_opens_nothing(tmp_path, center_key):
    with open_desk(tmp_path, center_key) as desk:
        desk.observe(plan_event(), 0)
    with open_desk(tmp_path, Identity.generate("center")) as other:
        assert other.tonight(evening("22:50")) == []
    # after a key rotation the retired key still opens it
    with RoundsDesk(EventStore(tmp_path / "center.db"), [Identity.generate("center"), center_key], 600) as rotated:
        assert states(rotated, evening("22:50"))["23:00"][0] == "due"


def test_each_rounds_alert_is_shown_once_even_across_a_restart(tmp_path, center_key):
    with open_desk(tmp_path, center_key) as desk:
        desk.observe(plan_event(), 0)
        assert desk.new_alerts(evening("22:44")) == []
        [due] = desk.new_alerts(evening("22:45"))
        assert (due.kind, due.cls, due.slot.time) == ("lookin_due", "event", "23:00")
        assert len(desk.new_alerts(evening("22:46"))) == 1  # not shown yet: still new
        desk.mark_shown(due)
        assert desk.new_alerts(evening("22:47")) == []
    with open_desk(tmp_path, center_key) as desk:
        assert desk.new_alerts(evening("22:48")) == []
        [visit] = desk.new_alerts(evening("23:15"))
        assert (visit.kind, visit.cls, visit.slot.reason) == ("visit_needed", "alarm", "look-in not done in time")
    with open_desk(tmp_path, center_key) as desk:  # never marked shown: shown after the restart
        [again] = desk.new_alerts(evening("23:16"))
        assert again.kind == "visit_needed"
        desk.mark_shown(again)
        assert desk.new_alerts(evening("23:17")) == []


def test_a_retry_alert_comes_when_the_retry_is_due(tmp_path, center_key):
    with open_desk(tmp_path, center_key) as desk:
        desk.observe(plan_event(), 0)
        for alert in desk.new_alerts(evening("22:45")):
            desk.mark_shown(alert)
        after = desk.record(HOME, "not_seen", "anna", evening("22:50"))
        assert after.next_text == "look again at 23:00"
        assert desk.new_alerts(evening("22:59")) == []
        [retry] = desk.new_alerts(evening("23:00"))
        assert (retry.kind, retry.slot.state) == ("lookin_retry", "retry_due")


def test_a_visit_called_for_an_unreachable_home_stands_when_it_is_back(tmp_path, center_key):
    with open_desk(tmp_path, center_key) as desk:
        desk.observe(plan_event(), 0)
        [visit] = desk.new_alerts(evening("22:45"), reachable=lambda home: False)
        assert (visit.kind, visit.slot.reason) == ("visit_needed", "home unreachable")
        desk.mark_shown(visit)
        assert desk.new_alerts(evening("22:46"), reachable=lambda home: True) == []
    with open_desk(tmp_path, center_key) as desk:
        assert states(desk, evening("22:47"), lambda home: True)["23:00"] == ("visit_needed", "home unreachable")
        assert desk.record(HOME, "seen", "anna", evening("23:20")).state == "seen"  # the patrol saw the resident


def test_camera_events_are_taken_in_by_the_time_they_happened(tmp_path, center_key):
    with open_desk(tmp_path, center_key) as desk:
        desk.observe(plan_event(), 0)
        desk.observe(event("fault", {"component": "camera", "detail": "unplugged"}, evening("22:40")), 0)
        desk.observe(event("fault_cleared", {"component": "camera"}, evening("22:30")), 0)  # older, arrives late
        assert states(desk, evening("22:50"))["23:00"] == ("visit_needed", "camera fault: unplugged")
        desk.observe(event("fault", {"component": "mat", "detail": "cable"}, evening("22:41")), 0)  # not the camera
        desk.observe(event("fault_cleared", {"component": "camera"}, evening("22:42")), 0)
        assert states(desk, evening("22:50"))["23:00"] == ("due", "")


def test_an_older_plan_arriving_late_does_not_replace_the_newer(tmp_path, center_key):
    with open_desk(tmp_path, center_key) as desk:
        desk.observe(plan_event(evening("21:00"), times=["23:30"]), 0)
        desk.observe(plan_event(evening("20:00"), times=["23:00"]), 0)
        assert list(states(desk, evening("22:00"))) == ["23:30"]
        desk.observe(plan_event(evening("21:05"), camera="none"), 0)  # the camera was taken away
        assert states(desk, evening("22:00")) == {}


def test_a_failed_look_in_result_calls_a_visit_for_the_open_slot(tmp_path, center_key):
    result = {"action": "lookin", "outcome": "failed", "reason": "camera did not open\nFAKE LINE", "staff": "anna",
              "role": "night-staff", "left": 1}
    with open_desk(tmp_path, center_key) as desk:
        desk.observe(plan_event(), 0)
        desk.observe(event("command_result", result, evening("20:00")), 0)  # outside the rounds: not a slot's
        desk.observe(event("command_result", {**result, "outcome": "refused"}, evening("22:50")), 0)
        assert states(desk, evening("22:50"))["23:00"] == ("due", "")
        desk.observe(event("command_result", result, evening("22:50")), 0)
        assert states(desk, evening("22:51"))["23:00"] == \
            ("visit_needed", "look-in failed: camera did not open FAKE LINE")  # one console line, whatever it sent


def test_a_failed_look_in_from_an_unsynchronized_clock_counts_at_arrival(tmp_path, center_key):
    result = {"action": "lookin", "outcome": "failed", "reason": "camera busy", "staff": "anna"}
    with open_desk(tmp_path, center_key) as desk:
        desk.observe(plan_event(), 0)
        desk.observe(event("command_result", result, datetime(2020, 1, 1, tzinfo=timezone.utc), synced=False),
                     evening("22:50").timestamp())
        assert states(desk, evening("22:51"))["23:00"][0] == "visit_needed"


def test_verdicts_are_refused_for_homes_without_rounds(tmp_path, center_key):
    with open_desk(tmp_path, center_key) as desk:
        with pytest.raises(RoundsError, match="home home-7 has sent no look-in plan"):
            desk.record(HOME, "seen", "anna", evening("22:50"))
        desk.observe(plan_event(times=[]), 0)
        with pytest.raises(RoundsError, match="no agreed look-in times"):
            desk.record(HOME, "seen", "anna", evening("22:50"))
        desk.observe(plan_event(evening("21:01")), 0)
        desk.record(HOME, "not_seen", "anna", evening("22:50"))
        desk.record(HOME, "not_seen", "anna", evening("22:51"))
        with pytest.raises(RoundsError, match="a physical visit is already needed"):
            desk.record(HOME, "not_seen", "anna", evening("22:52"), "23:00")


def test_a_plan_that_does_not_validate_is_not_kept(tmp_path, center_key):
    with open_desk(tmp_path, center_key) as desk:
        with pytest.raises(ValueError, match="times.0"):
            desk.observe(plan_event(times=["25:00"]), 0)
        assert desk.tonight(evening("22:50")) == []


def test_the_night_rolls_over_at_noon(tmp_path, center_key):
    with open_desk(tmp_path, center_key) as desk:
        desk.observe(plan_event(), 0)
        desk.record(HOME, "seen", "anna", evening("22:55"))
        assert states(desk, morning("11:59"))["23:00"] == ("seen", "")
        assert states(desk, morning("11:59"))["03:00"] == ("visit_needed", "look-in not done in time")
        assert states(desk, morning("12:00")) == {"23:00": ("upcoming", ""), "03:00": ("upcoming", "")}


def test_a_verdict_recorded_elsewhere_reaches_the_running_desk(tmp_path, center_key):
    with open_desk(tmp_path, center_key) as receiver_desk:
        receiver_desk.observe(plan_event(), 0)
        assert states(receiver_desk, evening("22:50"))["23:00"][0] == "due"
        with open_desk(tmp_path, center_key) as cli_desk:  # `trygg center not-seen` in another process
            cli_desk.record(HOME, "not_seen", "anna", evening("22:50"))
        assert states(receiver_desk, evening("22:51"))["23:00"][0] == "not_seen"


# -- the receiver: real envelopes in, alerts out once ------------------------------------------


class ListSink:
    def __init__(self) -> None:
        self.events, self.lookins, self.rejects, self.presences = [], [], [], []

    def event(self, message, received):
        self.events.append(message)

    def presence(self, home, state):
        self.presences.append((home, state))

    def storage(self, home, state, free_bytes):
        self.presences.append((home, f"storage {state}"))

    def rejected(self, topic, reason):
        self.rejects.append((topic, reason))

    def link(self, state, detail):
        pass

    def lookin(self, alert):
        self.lookins.append(alert)


class BrokenConsole(ListSink):
    def lookin(self, alert):
        raise BrokenPipeError("console closed")


class Center:
    """A receiver on a real store and real keys, fed sealed envelopes through handle()."""

    def __init__(self, tmp_path: Path, center_key: Identity, sink, clock: FakeClock, cases: bool = False) -> None:
        homes_dir = tmp_path / "homes"
        homes_dir.mkdir(exist_ok=True)
        self.home_key = HOME_KEY
        write_public(self.home_key.public(), homes_dir / f"{HOME}.pub", force=True)
        cfg = CenterConfig.model_validate({"broker": {"host": "127.0.0.1", "ca": "ca", "cert": "c", "key": "k"}})
        self.center_key, self.clock, self.sink = center_key, clock, sink
        self.store = EventStore(tmp_path / "center.db")
        self.desk = open_desk(tmp_path, center_key)
        self.homes = HomeRegistry(homes_dir)
        self.cases = case_desk(cfg, self.store, [center_key]) if cases else None
        self.receiver = Receiver(cfg, center_key, self.homes, self.store, sink, clock, rounds=self.desk,
                                 cases=self.cases)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test", protocol=mqtt.MQTTv5,
                                  manual_ack=True)  # never connected: acks and PUBACKs go nowhere

    def send(self, message: EventMessage) -> None:
        topic = topics.up(message.home, message.cls)
        mqtt_message = mqtt.MQTTMessage(mid=1, topic=topic.encode())
        mqtt_message.payload = envelope.seal(encode(message), topic, self.home_key.sign, self.center_key.kem.public)
        mqtt_message.qos = 1
        self.receiver.handle(self.client, [mqtt_message])

    def close(self) -> None:
        self.desk.close()
        self.store.close()


HOME_KEY = Identity.generate(HOME)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(evening("21:00"))


def test_the_receiver_takes_in_the_plan_and_shows_each_rounds_alert_once(tmp_path, center_key, clock):
    sink = ListSink()
    center = Center(tmp_path, center_key, sink, clock)
    center.send(plan_event(evening("20:59")))
    center.receiver.tick_rounds()
    assert sink.lookins == []
    clock.wall = evening("22:45")
    center.receiver.tick_rounds()
    center.receiver.tick_rounds()
    assert [(a.kind, a.slot.time) for a in sink.lookins] == [("lookin_due", "23:00")]
    center.send(event("fault", {"component": "camera", "detail": "no frames"}, evening("22:46")))
    clock.wall = evening("22:46")
    center.receiver.tick_rounds()
    assert [(a.kind, a.cls, a.slot.reason) for a in sink.lookins[1:]] == \
        [("visit_needed", "alarm", "camera fault: no frames")]
    assert [e.kind for e in sink.events] == ["lookin_plan", "fault"]  # the events themselves are shown as ever
    center.close()

    again = Center(tmp_path, center_key, ListSink(), clock)  # a restarted receiver
    again.receiver.tick_rounds()
    assert again.sink.lookins == []
    again.close()


def test_the_receiver_ignores_a_bad_plan_and_says_why(tmp_path, center_key, clock):
    sink = ListSink()
    center = Center(tmp_path, center_key, sink, clock)
    center.send(plan_event(times=["23:00", "7 pm"]))
    [(topic, reason)] = sink.rejects
    assert topic == topics.up(HOME, "event") and reason.startswith("look-in plan ignored: times.1:")
    assert center.store.count() == 1  # the event itself is still recorded (and acknowledged)
    clock.wall = evening("22:50")
    center.receiver.tick_rounds()
    assert sink.lookins == []
    center.close()


def test_an_offline_home_at_look_in_time_calls_a_visit(tmp_path, center_key, clock):
    sink = ListSink()
    center = Center(tmp_path, center_key, sink, clock)
    center.send(plan_event())
    center.store.set_presence(HOME, "offline", clock.time(), None, None)
    clock.wall = evening("22:45")
    center.receiver.tick_rounds()
    [visit] = sink.lookins
    assert (visit.kind, visit.cls, visit.slot.reason) == ("visit_needed", "alarm", "home unreachable")
    center.close()


def test_a_visit_needed_opens_a_case_and_a_look_in_due_does_not(tmp_path, center_key, clock):
    """A physical visit is an alarm case staff take and close; a look-in that is merely due is not."""
    center = Center(tmp_path, center_key, ListSink(), clock, cases=True)
    center.send(plan_event(evening("20:59")))
    clock.wall = evening("22:45")
    center.receiver.tick_rounds()
    assert [a.kind for a in center.sink.lookins] == ["lookin_due"] and center.cases.listing(open_only=True) == []
    center.send(event("fault", {"component": "camera", "detail": "no frames"}, evening("22:46")))
    clock.wall = evening("22:46")
    center.receiver.tick_rounds()
    [case] = center.cases.listing(open_only=True)
    assert (case.home, case.kinds, case.note) == (HOME, ["visit_needed"], "camera fault: no frames")
    center.close()


def test_a_home_whose_presence_the_store_does_not_hold_gets_no_guess_either_way(tmp_path, center_key, clock):
    """Never heard (no presence row): its look-in is due as planned, not called unreachable, and
    the rounds tick does not fail on it."""
    center = Center(tmp_path, center_key, ListSink(), clock)
    center.send(plan_event(evening("20:59")))
    with center.store.db.tx() as tx:
        tx.execute("DELETE FROM homes_state WHERE home = ?", (HOME,))
    assert HOME not in center.store.homes()
    clock.wall = evening("22:45")
    center.receiver.tick_rounds()
    assert [a.kind for a in center.sink.lookins] == ["lookin_due"]
    center.close()


def test_an_alert_is_raised_once_in_the_store_whichever_receiver_ticks_first(tmp_path, center_key, clock):
    """Two receivers on one store: the alert is one feed row, and only the first one logs it."""
    center = Center(tmp_path, center_key, ListSink(), clock)
    center.send(plan_event())
    other = Center(tmp_path, center_key, ListSink(), clock)  # knows the plan from the store
    clock.wall = evening("22:50")
    assert [a.kind for a in other.desk.new_alerts(clock.now())] == ["lookin_due"]
    center.receiver.tick_rounds()
    other.receiver.tick_rounds()
    assert [a.kind for a in center.sink.lookins] == ["lookin_due"] and other.sink.lookins == []
    assert center.store.db.query("SELECT type FROM feed WHERE type = 'lookin'") == [("lookin",)]
    center.close()
    other.close()


def test_the_receivers_rounds_thread_stops_it_when_the_console_is_gone(tmp_path, center_key, clock):
    center = Center(tmp_path, center_key, BrokenConsole(), clock)
    center.send(plan_event())
    clock.wall = evening("22:50")
    center.receiver.cfg = CenterConfig.model_validate(
        {"broker": {"host": "127.0.0.1", "ca": "ca", "cert": "c", "key": "k"}, "rounds": {"evaluate_every_s": 0.1}})
    ticker = threading.Thread(target=center.receiver._rounds_loop)
    ticker.start()
    ticker.join(10)
    assert not ticker.is_alive() and "console closed" in center.receiver.failed
    center.close()


# -- the console -------------------------------------------------------------------------------


def test_a_rounds_alert_on_the_console_reads_like_an_event(tmp_path):
    records = [rec("not_seen", evening("23:05")), rec("not_seen", evening("23:16"))]
    visit = rounds.alert_for(slot(evening("23:16"), records), evening("23:16"))
    assert alert_line(visit) == "PHYSICAL VISIT NEEDED  home-7  23:00 look-in: not seen on retry"
    out = (tmp_path / "out").open("w+")
    at = visit.time.timestamp()
    for as_json, lang in ((True, "sv"), (False, "en")):
        Printer(as_json, Words(lang), out=out, color=False).lookin(HOME, NIGHT, "23:00", visit.kind, visit.slot.reason, at)
    out.seek(0)
    first, second = out.read().splitlines()
    record = json.loads(first)
    assert set(record) == {"type", "id", "home", "class", "kind", "time", "clock_synced", "received", "body"}
    assert (record["type"], record["home"], record["class"], record["kind"]) == \
        ("lookin", HOME, "alarm", "visit_needed")
    assert is_valid_id(record["id"]) and record["time"] == "2025-01-10T22:16:00.000Z"
    assert record["body"] == {"slot": "23:00", "reason": "not seen on retry", "night": NIGHT}
    assert second.endswith("Physical visit needed  home-7  23:00  not seen on retry")


# -- the CLI, in-process, on a real center config ----------------------------------------------


def trygg(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        pytest.fail("trygg crashed:\n" + "".join(traceback.format_exception(*result.exc_info)))
    return result


def late_evening_zone() -> tuple[ZoneInfo, str]:
    """A fixed-offset zone where it is 23:xx now, far from the noon change of night, and that minute."""
    hour = datetime.now(timezone.utc).hour
    offset = 23 - hour if 23 - hour <= 14 else 23 - hour - 24
    name = "Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}"  # POSIX signs: Etc/GMT-1 is UTC+1
    zone = ZoneInfo(name)
    return zone, datetime.now(zone).strftime("%H:%M")


@pytest.fixture
def center_dir(tmp_path) -> Path:
    directory = tmp_path / "center"
    (directory / "homes").mkdir(parents=True)
    write_private(Identity.generate("center"), directory / "center.key")
    for home in (HOME, "home-8"):
        write_public(Identity.generate(home).public(), directory / "homes" / f"{home}.pub")
    (directory / "center.toml").write_text(
        '[broker]\nhost = "127.0.0.1"\nca = "ca.crt"\ncert = "center.crt"\nkey = "center-tls.key"\n')
    assert trygg("center", "staff-key", "anna", "--config", directory / "center.toml").exit_code == 0
    return directory


def give_plan(center_dir: Path, times: list[str], zone: ZoneInfo, home: str = HOME) -> None:
    cfg = center_config.load(center_dir / "center.toml")
    with RoundsDesk(EventStore(cfg.center.store), center_keys(cfg), cfg.rounds.retry_after_s) as desk:
        desk.observe(plan_event(datetime.now(timezone.utc), home, times=times, timezone=zone.key), 0)


def test_rounds_lists_tonights_look_ins(center_dir):
    config = center_dir / "center.toml"
    assert "no look-in rounds tonight" in trygg("center", "rounds", "--config", config).output
    zone, now = late_evening_zone()
    give_plan(center_dir, [now, "03:00"], zone)
    lines = trygg("center", "rounds", "--config", config).output.splitlines()
    assert re.fullmatch(rf"home-7 +{now}  due +look in by \d\d:\d\d", lines[0])
    assert re.fullmatch(r"home-7 +03:00  upcoming +due at 02:45", lines[1])
    listed = json.loads(trygg("center", "rounds", "--json", "--config", config).output)
    assert [(s["home"], s["slot"], s["state"]) for s in listed["slots"]] == \
        [(HOME, now, "due"), (HOME, "03:00", "upcoming")]


def test_not_seen_twice_calls_a_physical_visit(center_dir):
    config = center_dir / "center.toml"
    zone, now = late_evening_zone()
    give_plan(center_dir, [now], zone)
    before = datetime.now(zone)
    first = trygg("center", "not-seen", HOME, "--as", "anna", "--config", config)
    after = datetime.now(zone)
    assert first.exit_code == 0, first.output
    assert re.fullmatch(rf"home-7  {now} look-in: not seen \(recorded by anna\); look again at \d\d:\d\d\n",
                        first.output)
    assert first.output.split()[-1] in {(t + timedelta(seconds=600)).strftime("%H:%M") for t in (before, after)}
    second = trygg("center", "not-seen", HOME, "--as", "anna", "--config", config)
    assert second.output == f"PHYSICAL VISIT NEEDED  home-7  {now} look-in: not seen on retry\n"
    [listed] = json.loads(trygg("center", "rounds", "--json", "--config", config).output)["slots"]
    assert (listed["state"], listed["reason"], listed["by"]) == ("visit_needed", "not seen on retry", "anna")


def test_seen_closes_the_look_in_and_names_who_saw(center_dir):
    config = center_dir / "center.toml"
    zone, now = late_evening_zone()
    give_plan(center_dir, [now], zone)
    result = trygg("center", "seen", HOME, "--as", "anna", "--slot", now, "--config", config)
    assert (result.exit_code, result.output) == (0, f"home-7  {now} look-in: seen (recorded by anna)\n")
    again = trygg("center", "seen", HOME, "--as", "anna", "--config", config)
    assert again.exit_code == 1 and "no look-in is due now" in again.output


@pytest.mark.parametrize("args, message", [
    (["home-9", "--as", "anna"], "home home-9 is not enrolled here"),
    (["Home 7", "--as", "anna"], "HOME: home id must be"),
    ([HOME, "--as", "bertil"], "no key for staff member 'bertil'"),
    ([HOME, "--as", "anna", "--slot", "25:99"], "--slot '25:99': expected a time as HH:MM"),
    ([HOME, "--as", "anna", "--slot", "04:00"], "--slot 04:00: not an agreed look-in time tonight"),
    (["home-8", "--as", "anna"], "home home-8 has sent no look-in plan"),
])
def test_a_verdict_that_cannot_be_recorded_says_why_in_one_line(center_dir, args, message):
    zone, now = late_evening_zone()
    give_plan(center_dir, [now], zone)
    for verdict in ("seen", "not-seen"):
        result = trygg("center", verdict, *args, "--config", center_dir / "center.toml")
        assert result.exit_code == 1
        assert result.output.count("\n") == 1 and message in result.output, result.output


def test_a_verdict_with_nothing_due_says_when_the_next_one_is(center_dir):
    zone, _ = late_evening_zone()
    later = (datetime.now(zone) + timedelta(hours=3)).strftime("%H:%M")  # 02:xx, the same night
    give_plan(center_dir, [later], zone)
    result = trygg("center", "not-seen", HOME, "--as", "anna", "--config", center_dir / "center.toml")
    assert result.exit_code == 1 and f"no look-in is due now (next: {later}, due at" in result.output


# -- the whole receiver: real broker, real `trygg center watch`, restarted ----------------------


def test_watch_shows_rounds_alerts_once_across_a_restart(lab):
    edit_toml(lab.center_config, {"rounds": {"evaluate_every_s": 0.2}})
    first_home, second_home = lab.home("hem-rounds-1"), lab.home("hem-rounds-2")
    zone, now = late_evening_zone()
    watch = lab.watch()
    with HomeLink(lab, first_home) as link:
        link.send("lookin_plan", {**PLAN, "times": [now], "timezone": zone.key})
        due = watch.wait_event(lambda e: e.get("type") == "lookin")
        assert (due["home"], due["class"], due["kind"], due["body"]["slot"]) == \
            (first_home.id, "event", "lookin_due", now)
        link.send("fault", {"component": "camera", "detail": "no frames"})
        visit = watch.wait_event(lambda e: e.get("kind") == "visit_needed")
        assert (visit["class"], visit["body"]["reason"]) == ("alarm", "camera fault: no frames")
    watch.stop()

    again = lab.watch()
    with HomeLink(lab, second_home) as link:  # a second home's alert proves the restarted watch has ticked
        link.send("lookin_plan", {**PLAN, "times": [now], "timezone": zone.key})
        again.wait_event(lambda e: e.get("type") == "lookin" and e["home"] == second_home.id)
    assert [e["home"] for e in again.events if e.get("type") == "lookin"] == [second_home.id]
    listed = json.loads(trygg("center", "rounds", "--json", "--config", lab.center_config).output)["slots"]
    assert [(s["home"], s["state"]) for s in listed] == [(first_home.id, "visit_needed"), (second_home.id, "due")]


class HomeLink:
    """A home's own MQTT identity and device key, sending sealed events as its daemon would."""

    def __init__(self, lab, home) -> None:
        self.home, self.key = home.id, load_private(home.dir / "device.key")
        self.center = load_private(lab.root / "center" / "center.key").public()
        cert, key = lab.pki.client(home.id)
        host, port = lab.broker.rsplit(":", 1)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{home.id}-test", protocol=mqtt.MQTTv5)
        self.client.tls_set(ca_certs=str(lab.pki.ca), certfile=str(cert), keyfile=str(key))
        connected = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: connected.set() if not rc.is_failure else None
        self.client.connect(host, int(port))
        self.client.loop_start()
        assert connected.wait(10), "home test client did not connect"

    def send(self, kind: str, body: dict) -> None:
        message = event(kind, body, datetime.now(timezone.utc), self.home)
        topic = topics.up(self.home, "event")
        payload = envelope.seal(encode(message), topic, self.key.sign, self.center.kem)
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def __enter__(self) -> "HomeLink":
        return self

    def __exit__(self, *exc) -> None:
        self.client.disconnect()
        self.client.loop_stop()

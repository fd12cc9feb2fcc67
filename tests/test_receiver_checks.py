"""Every check the receiver makes on a message, one test each, so a rebuild cannot drop one silently.

A real Receiver runs on a thread of its own against the session's real Mosquitto (mutual TLS),
with a real SQLite store and a real homes directory; homes are throwaway key pairs enrolled by
writing their public key file, as `trygg center add-home` does. Events are sealed with the
project's own Sealer, presence signed with protocol.presence. A "wire" client holding the center's
broker identity (what a compromised broker or a stolen center certificate can do) publishes
what a home or an attacker would, and reads every acknowledgement the receiver sends, which
the test opens with the home's own key.

A negative ("never acknowledged", "not shown") is never waited for: each bad message is followed
on the same connection by a good one (the broker keeps one publisher's order), and the checks are
made once the good one is shown and acknowledged. The clock is a FakeClock: silence is reached
by moving its monotonic reading, not by sleeping. Found by running tools/mutate.py on
center/receiver.py (issue 13).
"""

import base64
import json
import sqlite3
from datetime import timedelta

import paho.mqtt.client as mqtt
import pytest

from base.keys import Identity, seal_at_rest, write_public
from center.homes import HomeRegistry
from center.receiver import Receiver
from center.store import EventStore
from protocol import envelope, topics
from protocol.ids import new_id
from protocol.messages import StatusMessage, encode, iso
from tests.support.lab import wait_for
from tests.support.receiverdesk import (  # and its fixtures desk, make_desk (a plugin: conftest)
    NOW,
    Sink,
    alarm,
    presences,
    rejected_and_not_acknowledged,
    sealed,
)

# -- the good path -------------------------------------------------------------------------------


def test_an_alarm_is_shown_recorded_sealed_as_received_and_acknowledged_to_its_home_only(desk):
    sink = desk.start()
    home, other = desk.home(), desk.home()
    message, topic, payload = home.seal("alarm", "fall", {"room": "bedroom", "pressure": 7})
    desk.wire.publish(topic, payload)
    wait_for(lambda: message.id in home.acked(), 10, "the alarm's ack")
    [shown] = [e for e in sink.events if e.id == message.id]
    assert (shown.home, shown.cls, shown.kind, shown.body) == (home.name, "alarm", "fall",
                                                               {"room": "bedroom", "pressure": 7})
    assert (message.id, home.name, "alarm", topic, payload) in desk.rows()  # the envelope as received
    assert home.acked() == [message.id] and other.acked() == []
    assert not [t for t, _ in sink.rejects if t.startswith(f"trygg/v1/{home.name}/")]


def test_a_restarted_receiver_is_not_sent_again_what_it_recorded_or_rejected(desk):
    """The broker's PUBACK is given for every message handled, accepted or rejected for good."""
    desk.start()
    home = desk.home()
    first = home.send()
    bad_topic = topics.up(home.name, "event")
    desk.wire.publish(bad_topic, b"not an envelope")
    desk.settle()
    assert home.acked() == [first.id] and len(desk.sink.rejected_on(bad_topic)) == 1
    desk.stop()
    sink = desk.start()
    assert home.acked() == [first.id]  # not redelivered, so not acknowledged again
    assert sink.rejected_on(bad_topic) == []


# -- checks on an event ---------------------------------------------------------------------------


def test_a_message_on_a_topic_of_unknown_shape_is_rejected_and_not_acknowledged(desk):
    desk.start()
    home = desk.home()
    message = alarm(home.name)
    topic = f"trygg/v1/{home.name}/up/urgent"  # matches the subscription, is no class of ours
    desk.wire.publish(topic, envelope.seal(encode(message), topic, home.key.sign, desk.key.kem.public))
    rejected_and_not_acknowledged(desk, home, topic, message.id, "unknown trygg/v1 topic")


def test_a_message_on_a_channel_the_receiver_does_not_take_is_rejected_and_a_cleared_status_is_no_news(desk):
    """handle() takes events and presence only: a look-in picture or a command reaching it (a
    wider subscription, a misconfigured shared group) is reported, never taken as an event. A
    cleared retained status (empty and retained) is no news; an empty live message is reported.
    Fed straight to handle(): Mosquitto's subscription and retained store never deliver these."""
    home = desk.home()
    sink = Sink()
    store = EventStore(desk.cfg.center.store)
    receiver = Receiver(desk.cfg, desk.key, HomeRegistry(desk.homes_dir), store, sink, desk.clock)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="never-connected", protocol=mqtt.MQTTv5,
                         manual_ack=True)  # never connected: its PUBACKs go nowhere

    def handle(topic: str, payload: bytes, retain: bool = False) -> None:
        message = mqtt.MQTTMessage(mid=1, topic=topic.encode())
        message.payload, message.qos, message.retain = payload, 1, retain
        receiver.handle(client, [message])

    message, topic, payload = home.seal()
    for channel, name in (("lookin", "lookin"), ("down/cmd", "cmd"), ("down/ack", "ack")):
        handle(f"trygg/v1/{home.name}/{channel}", payload)
        assert sink.rejected_on(f"trygg/v1/{home.name}/{channel}") == [f"unexpected channel {name!r}"]
    handle(topics.status(home.name), b"", retain=True)
    assert sink.rejected_on(topics.status(home.name)) == []
    handle(topics.status(home.name), b"")
    assert len(sink.rejected_on(topics.status(home.name))) == 1
    assert sink.events == [] and store.count() == 0
    store.close()


def test_an_event_from_a_home_that_is_not_enrolled_is_rejected_and_not_acknowledged(desk):
    desk.start()
    stranger = desk.home("stranger", enroll=False)
    message, topic, payload = stranger.seal()
    desk.wire.publish(topic, payload)
    rejected_and_not_acknowledged(desk, stranger, topic, message.id, "signed by an unknown key")


def test_an_envelope_that_does_not_open_is_rejected_with_its_reason(desk):
    desk.start()
    home = desk.home()
    message = alarm(home.name)
    topic = topics.up(home.name, "alarm")
    other_center = Identity.generate("other-center")
    desk.wire.publish(topic, envelope.seal(encode(message), topic, home.key.sign, other_center.kem.public))
    rejected_and_not_acknowledged(desk, home, topic, message.id, "sealed to a key we do not hold")
    empty = topics.up(home.name, "event")
    desk.wire.publish(empty, b"")  # an empty message is news too: it is no cleared retained status
    rejected_and_not_acknowledged(desk, home, empty, None, "")


def test_an_event_signed_by_another_home_is_rejected_and_not_acknowledged(desk):
    desk.start()
    victim, impostor = desk.home("victim"), desk.home("impostor")
    message = alarm(victim.name)
    topic, payload = sealed(victim, message, signer=impostor.key)  # an enrolled key, but not this home's
    desk.wire.publish(topic, payload)
    rejected_and_not_acknowledged(desk, victim, topic, message.id, "signed by an unknown key")
    assert impostor.acked() == []


def test_an_event_moved_to_another_homes_topic_does_not_open(desk):
    desk.start()
    home, other = desk.home(), desk.home()
    message, topic, payload = home.seal()
    moved = topics.up(other.name, "alarm")
    desk.wire.publish(moved, payload)
    rejected_and_not_acknowledged(desk, other, moved, message.id, "")
    assert home.acked() == []


def test_a_body_that_is_not_an_event_is_rejected_and_not_acknowledged(desk):
    desk.start()
    home = desk.home()
    topic = topics.up(home.name, "alarm")
    for body in (b"\xff not json", json.dumps({"v": 1, "t": "event", "home": home.name}).encode()):
        desk.wire.publish(topic, envelope.seal(body, topic, home.key.sign, desk.key.kem.public))
        desk.settle()
    reasons = desk.sink.rejected_on(topic)
    assert len(reasons) == 2 and not any("internal error" in r for r in reasons), reasons
    assert home.acked() == []


def test_an_event_naming_another_home_in_its_body_is_rejected_and_not_acknowledged(desk):
    """Signed by this home's key for this home's topic, but claiming to be another home's alarm."""
    desk.start()
    home, other = desk.home(), desk.home()
    message = alarm(other.name)
    topic, payload = sealed(home, message, topic=topics.up(home.name, "alarm"))
    desk.wire.publish(topic, payload)
    rejected_and_not_acknowledged(desk, home, topic, message.id, f"event for {other.name}/alarm arrived on")
    assert other.acked() == []


def test_an_event_whose_class_differs_from_its_topic_is_rejected_and_not_acknowledged(desk):
    """A telemetry reading dressed as an alarm (or an alarm hidden in telemetry) would jump or
    lose its place in the queue: the class in the body must be the topic's."""
    desk.start()
    home = desk.home()
    for body_cls, topic_cls in (("telemetry", "alarm"), ("alarm", "telemetry")):
        message = alarm(home.name, cls=body_cls)
        topic, payload = sealed(home, message, topic=topics.up(home.name, topic_cls))
        desk.wire.publish(topic, payload)
        rejected_and_not_acknowledged(desk, home, topic, message.id, f"event for {home.name}/{body_cls} arrived on")


def test_an_alarm_opens_a_case_in_the_same_record_and_its_resend_joins_it_once(desk):
    """With the case desk (as the service runs it): the alarm's record opens the home's case,
    the re-sent copy adds nothing, and telemetry opens none."""
    desk.start(cases=True)
    home, quiet = desk.home(), desk.home()
    message, topic, payload = home.seal("alarm", "fall")
    desk.wire.publish(topic, payload)
    desk.settle()
    desk.wire.publish(topic, payload)
    quiet.send("telemetry", "temperature", {"c": 20})
    desk.settle()
    case = desk.cases.open_case_of(home.name)
    assert case is not None and case.alarms == [message.id] and case.kinds == ["fall"]
    assert desk.cases.open_case_of(quiet.name) is None
    assert home.acked() == [message.id, message.id]


def test_a_look_in_plan_is_taken_in_by_the_rounds_and_a_bad_one_is_said_ignored_once(desk):
    """With the rounds desk: a home's look-in plan is taken in as it is recorded (tonight's slots
    follow from it); a plan that does not validate is shown as ignored, once, the event still shown."""
    sink = desk.start(rounds=True)
    home, other = desk.home(), desk.home()
    plan = {"camera": "synthetic", "timezone": "Europe/Stockholm", "times": ["23:00", "03:00"], "tolerance_s": 900.0,
            "windows": [{"start": "22:00", "end": "06:00", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}],
            "max_per_night": 2, "privacy": "blur", "roles": ["night-staff"]}
    message, topic, payload = home.seal("event", "lookin_plan", plan)
    desk.wire.publish(topic, payload)
    bad, bad_topic, bad_payload = other.seal("event", "lookin_plan", {**plan, "times": ["25:99"]})
    desk.wire.publish(bad_topic, bad_payload)
    desk.settle()
    assert {slot.home for slot in desk.rounds.tonight(NOW)} == {home.name}  # taken in the first time
    assert len(sink.rejected_on(bad_topic)) == 1
    desk.wire.publish(topic, payload)  # both re-sent: duplicates go to the rounds no more
    desk.wire.publish(bad_topic, bad_payload)
    desk.settle()
    assert {slot.home for slot in desk.rounds.tonight(NOW)} == {home.name}
    assert sink.shown(message.id) == 1 and sink.shown(bad.id) == 1
    [ignored] = sink.rejected_on(bad_topic)
    assert "look-in plan ignored" in ignored
    assert sink.rejected_on(topics.up(home.name, "event")) == []


def test_a_duplicate_is_shown_once_but_acknowledged_again(desk):
    """The first ack may have been lost: the home re-sends, and must hear again that we have it."""
    sink = desk.start()
    home = desk.home()
    message, topic, payload = home.seal()
    desk.wire.publish(topic, payload)
    wait_for(lambda: home.acked() == [message.id], 10, "the first ack")
    desk.wire.publish(topic, payload)
    wait_for(lambda: home.acked() == [message.id, message.id], 10, "the second ack")
    assert sink.shown(message.id) == 1
    assert [row[0] for row in desk.rows()].count(message.id) == 1


def test_a_backlog_after_a_restart_is_shown_once_and_each_home_acknowledged_its_own_ids(desk):
    """Events wait at the broker while the receiver restarts; they come in as a batch, with a
    home's re-sent duplicate among them. Each home's ack is sealed to that home and names its
    ids once each, never another home's."""
    desk.start()
    first, second = desk.home(), desk.home()
    desk.stop()
    sent_first = [first.seal("alarm" if i == 0 else "event", "fall") for i in range(3)]
    sent_second = [second.seal("telemetry", "temperature", {"c": 20 + i}) for i in range(2)]
    for _, topic, payload in sent_first + sent_second + [sent_first[0]]:  # the alarm twice
        desk.wire.publish(topic, payload)
    sink = desk.start()
    ids_first, ids_second = [m.id for m, _, _ in sent_first], [m.id for m, _, _ in sent_second]
    wait_for(lambda: set(first.acked()) == set(ids_first) and set(second.acked()) == set(ids_second), 10,
             "both homes' acks")
    assert sorted(first.acked()) in (sorted(ids_first), sorted(ids_first + ids_first[:1]))  # one batch or two
    assert sorted(second.acked()) == sorted(ids_second)
    assert all(len(set(ack)) == len(ack) for ack in first.acks() + second.acks())  # an id once per ack
    assert [sink.shown(i) for i in ids_first + ids_second] == [1] * 5


@pytest.mark.parametrize("lane", ["all", "alarm"])
def test_an_event_the_store_cannot_record_is_not_acknowledged_and_is_recorded_once_it_can(desk, lane):
    """Recorded before acknowledged: the home deletes an alarm on our ack. While another process
    holds center.db's write lock the receiver acknowledges nothing (no ack to the home, no PUBACK
    to the broker) and says why; once the lock is free it records and acknowledges by itself.
    The alarm lane too, where no other write (presence) would notice the store is back: the
    failed batch must end the session, or the broker would not send it again."""
    desk.start(lane=lane)
    home = desk.home()
    holder = sqlite3.connect(desk.cfg.center.store, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    message = home.send()
    wait_for(lambda: "locked" in (desk.receiver.last_error or ""), 30, "the receiver to report the locked store")
    assert home.acked() == [] and desk.receiver.failed is None
    holder.execute("ROLLBACK")
    holder.close()
    wait_for(lambda: message.id in home.acked(), 30, "the ack once the store takes writes")
    assert desk.sink.shown(message.id) == 1 and message.id in [row[0] for row in desk.rows()]


def test_a_status_the_store_cannot_take_is_not_acknowledged_and_is_taken_once_it_can(desk):
    """A presence change (here a home coming online) while center.db is locked by another process
    is not a bad message: it must not be acknowledged to the broker as handled, or it is lost."""
    desk.start()
    home = desk.home()
    holder = sqlite3.connect(desk.cfg.center.store, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    home.status("online")
    wait_for(lambda: "locked" in (desk.receiver.last_error or ""), 30, "the receiver to report the locked store")
    holder.execute("ROLLBACK")
    holder.close()
    wait_for(lambda: presences(desk.sink, home) == ["online"], 30, "the status taken once the store takes writes")
    assert desk.store.homes()[home.name].state == "online"
    assert not [r for t, r in desk.sink.rejects if "internal error" in r]


def test_a_home_enrolled_or_removed_while_the_receiver_runs_is_trusted_or_refused_at_once(desk):
    desk.start()
    home = desk.home(enroll=False)
    home.enroll()
    first = home.send()
    desk.settle()
    assert home.acked() == [first.id]
    (desk.homes_dir / f"{home.name}.pub").unlink()
    second, topic, payload = home.seal()
    desk.wire.publish(topic, payload)
    rejected_and_not_acknowledged(desk, home, topic, second.id, "signed by an unknown key")


def test_a_stray_key_file_naming_an_enrolled_home_does_not_take_it_over(desk):
    """A leftover old-<home>.pub (an old key) sorts after <home>.pub; only <home>.pub is that home's key."""
    desk.start()
    home = desk.home()
    thief = Identity.generate(home.name)  # a key claiming to be the home's
    write_public(thief.public(), desk.homes_dir / f"zz-old-{home.name}.pub", force=True)
    forged = alarm(home.name)
    topic, payload = sealed(home, forged, signer=thief)
    desk.wire.publish(topic, payload)
    rejected_and_not_acknowledged(desk, home, topic, forged.id, "signed by an unknown key")
    good = home.send()
    wait_for(lambda: good.id in home.acked(), 10, "the home's own key still trusted")


def test_an_event_sealed_to_the_centers_next_key_opens_once_the_key_appears(desk):
    """A key rotation begun while the receiver runs: the new key file is read, not a restart needed."""
    sink = desk.start()
    home = desk.home()
    next_key = Identity.generate("center")
    desk.opening = [desk.key.kem, next_key.kem]
    message = alarm(home.name)
    topic = topics.up(home.name, "alarm")
    desk.wire.publish(topic, envelope.seal(encode(message), topic, home.key.sign, next_key.kem.public))
    wait_for(lambda: message.id in home.acked(), 10, "the ack of the event sealed to the next key")
    assert sink.shown(message.id) == 1


def test_an_audit_entry_is_shown_with_its_sealed_detail_opened(desk):
    sink = desk.start()
    home = desk.home()
    detail = {"by": "anna", "reason": "visit"}
    context = f"{home.name}/audit/4/unlock"
    sealed_detail = base64.b64encode(seal_at_rest(desk.key.kem.public, json.dumps(detail).encode(), context)).decode()
    entry = home.send("event", "audit", {"seq": 4, "kind": "unlock", "detail": {"result": "done"},
                                         "sealed": sealed_detail})
    lost = home.send("event", "audit", {"seq": 5, "kind": "unlock", "detail": {"result": "done"},
                                        "sealed": base64.b64encode(b"\x01" * 80).decode()})
    desk.settle()
    [opened] = [e for e in sink.events if e.id == entry.id]
    assert opened.body == {"seq": 4, "kind": "unlock", "detail": {"result": "done", "by": "anna", "reason": "visit"}}
    [unopened] = [e for e in sink.events if e.id == lost.id]  # shown, never dropped
    assert unopened.body["sealed"] is True and unopened.body["unopened"]
    assert set(home.acked()) == {entry.id, lost.id}


# -- presence ----------------------------------------------------------------------------------------


def test_a_homes_heartbeat_shows_it_online_and_its_last_will_offline_each_change_once(desk):
    sink = desk.start()
    home = desk.home()
    home.status("online", NOW)
    home.status("online", NOW + timedelta(seconds=60))
    home.status("offline", NOW + timedelta(seconds=90))
    desk.settle()
    assert presences(sink, home) == ["online", "offline"]


@pytest.mark.parametrize("rounds", [False, True], ids=["alone", "with-rounds-thread"])
def test_a_console_that_cannot_show_a_presence_change_stops_the_receiver_before_it_acknowledges(desk, rounds):
    """Shown, then recorded, then acknowledged: when staff cannot be shown what a batch holds,
    the receiver stops with the reason and acknowledges nothing more (the broker keeps it all);
    its rounds thread, when it has one, stops with it."""
    sink = desk.start(Sink(fail_presence=True), rounds=rounds)
    home = desk.home()
    home.status("online", NOW)
    message = home.send()  # after the status: in its batch or a later one
    wait_for(lambda: desk.receiver.failed is not None, 20, "the receiver to stop")
    desk.thread.join(10)
    assert not desk.thread.is_alive() and "cannot show events to staff" in desk.receiver.failed
    assert message.id not in home.acked() and sink.shown(message.id) == 0
    desk.store.close()
    if desk.rounds is not None:
        desk.rounds.close()


def test_a_status_signed_by_another_key_is_rejected(desk):
    sink = desk.start()
    home, impostor = desk.home(), desk.home("impostor")
    home.status("online", NOW, signer=impostor.key)
    desk.settle()
    assert presences(sink, home) == []
    assert len(sink.rejected_on(topics.status(home.name))) == 1


def test_a_status_naming_another_home_is_rejected(desk):
    sink = desk.start()
    home, other = desk.home(), desk.home()
    claim = StatusMessage(home=other.name, state="online", time=NOW, heartbeat_s=60)  # home's key, other's name
    desk.wire.publish(topics.status(home.name), envelope.sign(encode(claim), topics.status(home.name), home.key.sign))
    desk.settle()
    assert presences(sink, home) == [] and presences(sink, other) == []
    [reason] = sink.rejected_on(topics.status(home.name))
    assert f"status for {other.name!r}" in reason


def test_a_replayed_heartbeat_cannot_revive_an_offline_home_even_after_a_restart(desk):
    sink = desk.start()
    home = desk.home()
    home.status("online", NOW)
    home.status("offline", NOW + timedelta(seconds=30))
    home.status("online", NOW)  # recorded earlier, replayed by someone on the broker
    desk.settle()
    assert presences(sink, home) == ["online", "offline"]
    on, off = desk.store.replay_marks()[home.name]
    assert (on, off) == (NOW.timestamp(), (NOW + timedelta(seconds=30)).timestamp())
    desk.stop()
    sink = desk.start()
    home.status("online", NOW)
    desk.settle()
    assert presences(sink, home) == []
    assert desk.store.homes()[home.name].state == "offline"  # the replay revived nothing


def test_a_live_heartbeat_from_a_home_whose_clock_is_behind_keeps_it_online(desk):
    """Heard now is heard now, whatever the device's clock says; only the stamp of a retained
    copy (delivered when we subscribe) tells when it was last heard."""
    sink = desk.start()
    home = desk.home()
    home.status("online", NOW - timedelta(minutes=10), heartbeat_s=60)
    desk.settle()
    desk.clock.advance(60)
    desk.settle()
    assert presences(sink, home) == ["online"]
    desk.clock.advance(200)  # more than three heartbeats without a word
    wait_for(lambda: presences(sink, home) == ["online", "silent"], 10, "the home shown silent")


def test_a_retained_heartbeat_from_ten_minutes_ago_shows_the_home_silent_at_once(desk):
    home = desk.home()
    home.status("online", NOW - timedelta(minutes=10), heartbeat_s=60, retain=True)
    fresh = desk.home()
    fresh.status("online", NOW - timedelta(seconds=5), heartbeat_s=60, retain=True)
    try:
        sink = desk.start()  # the broker hands over the retained copies as we subscribe
        wait_for(lambda: presences(sink, home) == ["online", "silent"], 10, "the stale home shown silent")
        desk.settle()
        assert presences(sink, fresh) == ["online"]
    finally:
        for h in (home, fresh):
            desk.wire.publish(topics.status(h.name), b"", retain=True)


def test_a_retained_last_will_shows_the_home_offline_at_once(desk):
    """A home that went away before we started: its retained offline status is handed over as we
    subscribe, and staff see it offline (last heard unknown), not an error."""
    home = desk.home()
    home.status("offline", NOW - timedelta(minutes=10), retain=True)
    try:
        sink = desk.start()
        desk.settle()
        assert presences(sink, home) == ["offline"]
        assert sink.rejected_on(topics.status(home.name)) == []
    finally:
        desk.wire.publish(topics.status(home.name), b"", retain=True)


def test_a_heartbeats_sealed_fleet_report_is_kept_as_sent(desk):
    """The device's fleet report rides its heartbeat, sealed to the center: kept as it came."""
    desk.start()
    home = desk.home()
    report = base64.b64encode(b"\x02" * 120).decode()
    home.status("online", NOW, report=report)
    desk.settle()
    with sqlite3.connect(desk.cfg.center.store) as conn:
        [(kept,)] = conn.execute("SELECT report FROM homes_state WHERE home = ?", (home.name,)).fetchall()
    assert bytes(kept) == report.encode()


def test_an_event_counts_as_hearing_from_the_home(desk):
    sink = desk.start()
    home = desk.home()
    home.status("online", NOW, heartbeat_s=60)
    desk.settle()
    desk.clock.advance(150)
    home.send("telemetry", "temperature", {"c": 21})
    desk.settle()
    desk.clock.advance(150)  # 300 s after the heartbeat, 150 s after the event: not silent
    desk.settle()
    desk.settle()
    assert presences(sink, home) == ["online"]


def test_a_full_card_is_shown_when_it_starts_and_when_it_ends_not_on_every_heartbeat(desk):
    sink = desk.start()
    home = desk.home()
    for i, (storage, free) in enumerate([("ok", 900), (None, None), ("low", 10), ("low", 8), (None, None),
                                         ("failing", 0), ("ok", 500), ("ok", 600)]):
        extra = {} if storage is None else {"storage": storage, "free_bytes": free}
        home.status("online", NOW + timedelta(seconds=i), **extra)
    desk.settle()
    with sink.lock:
        shown = [(state, free) for h, state, free in sink.storages if h == home.name]
    assert shown == [("low", 10), ("failing", 0), ("ok", 500)]


def test_presence_is_state_in_the_store_and_each_change_is_fed_once_across_a_restart(desk):
    """A view started later knows the home is offline; the change is one feed row, not two."""
    desk.start()
    home = desk.home()
    home.status("offline", NOW)
    desk.settle()
    desk.stop()
    desk.start()
    home.status("offline", NOW)  # the same status again (a restarted receiver's retained copy)
    desk.settle()
    assert desk.store.homes()[home.name].state == "offline"
    rows = desk.store.db.query("SELECT ref FROM feed WHERE type = 'presence' AND home = ?", (home.name,))
    assert rows == [("offline",)]


def test_only_an_audit_entry_has_its_detail_opened_other_bodies_are_shown_as_sent(desk):
    """A dispenser's "sealed": true (the blister is intact) is the home's data, not a sealed detail."""
    sink = desk.start()
    home = desk.home()
    body = {"compartment": 3, "sealed": True}
    message = home.send("event", "dose_missed", body)
    desk.settle()
    [shown] = [e for e in sink.events if e.id == message.id]
    assert shown.body == body


# -- test traffic: its own class, never in the alarm lane, limited per home ----------------------


def test_a_test_dressed_as_an_alarm_is_rejected_and_not_acknowledged(desk):
    """A test must never ride the alarm lane: class alarm with kind test is refused, so is the reverse."""
    desk.start()
    home = desk.home()
    for cls, kind in (("alarm", "test"), ("test", "fall")):
        fields = {"v": 1, "t": "event", "id": new_id(), "home": home.name, "class": cls, "kind": kind,
                  "time": iso(NOW), "clock_synced": True, "body": {}}
        topic = topics.up(home.name, cls)
        desk.wire.publish(topic, envelope.seal(json.dumps(fields).encode(), topic, home.key.sign, desk.key.kem.public))
        rejected_and_not_acknowledged(desk, home, topic, fields["id"], "travels as class 'test' and only it does")


def test_test_traffic_past_its_limit_is_acknowledged_but_neither_recorded_nor_shown_and_said_once(desk):
    from center.testlimit import TESTS_BURST

    sink = desk.start()
    home = desk.home()
    sent = [home.send("test", "test", {"simulated": True, "tests": "alarm"}) for _ in range(TESTS_BURST + 5)]
    fall = home.send("alarm", "fall")  # not limited, and not held up
    wait_for(lambda: {m.id for m in sent} | {fall.id} <= set(home.acked()), 20, "every test acknowledged")
    shown = [m.id for m in sent if sink.shown(m.id)]
    recorded = {row[0] for row in desk.rows()}
    assert len(shown) == TESTS_BURST and set(shown) <= recorded and sink.shown(fall.id) == 1
    assert len(recorded & {m.id for m in sent}) == TESTS_BURST
    reasons = sink.rejected_on(topics.up(home.name, "test"))
    assert sum(int(r.split()[0]) for r in reasons) == 5 and all("over the limit" in r for r in reasons), reasons
    other = desk.home()  # the limit is per home
    first = other.send("test", "test", {"simulated": True, "tests": "event"})
    wait_for(lambda: sink.shown(first.id) == 1, 10, "another home's test shown")

"""The receiver's link to the broker and its stop path, one test each (split from
test_receiver_checks.py, same desk: tests/support/receiverdesk.py; what the lane reads: test_receiver_reading.py): what staff are told of the
link, the reconnect backoff, a store that fails mid-batch, a batch in hand at stop, and what
the broker grants and drops. Found by running tools/mutate.py on center/receiver.py."""

import os
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from base import mqttconn
from base.keys import KeyFileError
from center.homes import HomeRegistry
from center.receiver import Receiver, Ticks, lane_subscriptions
from center.store import EventStore
from tests.support.broker import Broker
from tests.support.lab import wait_for
from tests.support.receiverdesk import (  # and its fixtures desk, make_desk (a plugin: conftest)
    NOW,
    Desk,
    Home,
    Sink,
    links,
)

# -- the link to the broker: what staff are told of it --------------------------------------------


def test_what_the_broker_grants_is_noted_at_connect_and_a_queue_too_small_for_our_homes_warned_of(desk):
    """The session's broker runs on Mosquitto's defaults (Receive Maximum 20, so a queue of 1,000):
    too small for three homes' windows (3 x 500). The service reports what the receiver noted."""
    desk.home(), desk.home()  # with the probe: three homes
    desk.start()
    assert desk.receiver.broker_limits.receive_maximum == 20
    [warning] = [w for w in desk.receiver.broker_warnings if "default limits" in w]
    assert "default limits" in warning and "too small for 3 homes" in warning


def test_a_lane_is_one_of_three_and_only_the_alarm_lane_has_a_session_of_its_own(desk):
    """The alarm lane's queue at the broker is its own (client id <name>-alarm); "all" and "bulk"
    keep <name>, so a center that splits its lanes keeps its backlog in the bulk lane."""
    store = EventStore(desk.cfg.center.store)
    try:
        lanes = {lane: Receiver(desk.cfg, desk.key, HomeRegistry(desk.homes_dir), store, Sink(), desk.clock,
                                lane=lane) for lane in ("all", "alarm", "bulk")}
        ids = {lane: rx.client_id for lane, rx in lanes.items()}
        for rx in lanes.values():  # before any connect (the broker may be down at start), what the service reads
            assert rx.not_receiving == [] and rx.broker_warnings == [] and rx.broker_limits is None
            assert not rx.connected.is_set() and rx.last_error is None and rx.failed is None
        with pytest.raises(ValueError, match="lane must be one of all, alarm, bulk, got 'alarms'"):
            Receiver(desk.cfg, desk.key, HomeRegistry(desk.homes_dir), store, Sink(), desk.clock, lane="alarms")
    finally:
        store.close()
    name = desk.cfg.center.name
    assert ids == {"all": name, "alarm": f"{name}-alarm", "bulk": name}


class LookinSink(Sink):
    def __init__(self) -> None:
        super().__init__()
        self.lookins: list = []

    def lookin(self, alert) -> None:
        with self.lock:
            self.lookins.append(alert)


def test_with_the_rounds_desk_a_running_receiver_raises_a_due_look_in_by_itself(desk):
    """A look-in falls due by the clock, not by a message: the receiver's own rounds thread shows it,
    saying that the center's clock is not synchronized when it is not (the time shown is a guess)."""
    desk.cfg = desk.cfg.model_copy(update={"rounds": desk.cfg.rounds.model_copy(update={"evaluate_every_s": 0.2})})
    desk.clock.wall = datetime(2025, 1, 10, 22, 5, tzinfo=UTC)  # 23:05 in Stockholm: the 23:00 look-in
    desk.clock.is_synced = False
    sink = desk.start(LookinSink(), rounds=True)
    home = desk.home()
    plan = {"camera": "synthetic", "timezone": "Europe/Stockholm", "times": ["23:00"], "tolerance_s": 900.0,
            "windows": [{"start": "22:00", "end": "06:00", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]}],
            "max_per_night": 2, "privacy": "blur", "roles": ["night-staff"]}
    _, topic, payload = home.seal("event", "lookin_plan", plan)
    desk.wire.publish(topic, payload)
    desk.settle()
    [alert] = wait_for(lambda: list(sink.lookins), 10, "the due look-in shown")
    assert alert.kind == "lookin_due" and alert.slot.home == home.name and alert.slot.time == "23:00"
    assert alert.clock_synced is False


def test_a_receiver_stopped_before_it_ran_returns_at_once_and_clean(desk):
    """The service stops lanes that may never have run (a shutdown during start): run() returns,
    with nothing failed and nothing shown, rounds desk or not."""
    for rounds in (False, True):
        desk.launch(rounds=rounds)
        desk.receiver.stop()
        desk.thread.join(10)
        assert not desk.thread.is_alive()
        rx = desk.receiver
        rx.run()  # again, on this thread: an error in it would fail here
        assert rx.failed is None and links(desk.sink) in ([], ["connected"], ["connected", "disconnected"])
        desk.stop()


def test_with_a_shared_group_the_lanes_share_their_event_topics_and_each_takes_every_status(desk):
    """Receivers sharing a group split each lane's events between them (the broker gives each to
    one); statuses are never shared: every receiver keeps every home's presence."""
    cfg = desk.cfg.model_copy(update={"center": desk.cfg.center.model_copy(update={"shared_group": "rx"})})
    assert lane_subscriptions(cfg, "alarm") == ["$share/rx/trygg/v1/+/up/alarm"]
    assert lane_subscriptions(cfg, "bulk") == [f"$share/rx/trygg/v1/+/up/{c}" for c in ("event", "telemetry", "test")] + \
        ["trygg/v1/+/status"]
    assert lane_subscriptions(cfg, "all") == ["$share/rx/trygg/v1/+/up/+", "trygg/v1/+/status"]
    assert lane_subscriptions(desk.cfg, "all") == ["trygg/v1/+/up/+", "trygg/v1/+/status"]  # no group


def test_periodic_work_on_the_receiving_thread_runs_once_per_period_each_by_its_own_name():
    """The receiving loop turns every few milliseconds; silence checks (1 s) and the test limit's
    clean-up (60 s) must not run on every turn (a store query each time), nor stop running."""
    ticks = Ticks()
    assert ticks.due("silent", 1.0, 100.0) is True  # the first look is always due
    assert ticks.due("silent", 1.0, 100.5) is False and ticks.due("silent", 1.0, 100.999) is False
    assert ticks.due("tests", 60.0, 100.5) is True  # another name keeps its own time
    assert ticks.due("silent", 1.0, 101.0) is True  # a full period after the last run
    assert ticks.due("silent", 1.0, 101.5) is False and ticks.due("silent", 1.0, 102.0) is True
    assert ticks.due("tests", 60.0, 160.0) is False and ticks.due("tests", 60.0, 160.5) is True


def test_a_tls_key_others_can_read_stops_the_receiver_before_it_connects_and_says_which_file(desk, tmp_path):
    """Fail closed: a broker key readable by others is refused with the file, its mode and the fix."""
    key = tmp_path / "center-tls.key"
    key.write_bytes(Path(desk.cfg.broker.key).read_bytes())
    key.chmod(0o644)
    cfg = desk.cfg.model_copy(update={"broker": desk.cfg.broker.model_copy(update={"key": key})})
    store = EventStore(cfg.center.store)
    try:
        with pytest.raises(KeyFileError) as refused:
            Receiver(cfg, desk.key, HomeRegistry(desk.homes_dir), store, Sink(), desk.clock)
    finally:
        store.close()
    assert str(key) in str(refused.value) and "TLS private key" in str(refused.value) and "chmod 600" in str(refused.value)
    key.chmod(0o600)  # the same file, private: taken
    store = EventStore(cfg.center.store)
    try:
        Receiver(cfg, desk.key, HomeRegistry(desk.homes_dir), store, Sink(), desk.clock)
    finally:
        store.close()


class Delays(mqttconn.Backoff):
    """The receiver's own reconnect backoff (0.5 s doubling to 30 s), remembering each delay it chose."""

    def __init__(self) -> None:
        super().__init__(0.5, 30.0)
        self.chosen: list[float] = []

    def next_delay(self) -> float:
        delay = super().next_delay()
        self.chosen.append(delay)
        return delay


def test_a_broker_that_refuses_the_receiver_is_never_shown_as_connected(make_desk):
    """A CONNACK with a failure code is no link: staff must not be told "connected"."""
    desk, broker = make_desk("clientid_prefixes wire-")  # the wire client gets in, the receiver is refused
    sink = desk.launch()
    wait_for(lambda: broker.log_text().count("not authorised") >= 2, 30, "the broker to refuse the receiver twice")
    assert set(links(sink)) == {"refused"} and not desk.receiver.connected.is_set()  # told, never "connected"
    assert "refused this receiver" in desk.receiver.last_error
    assert desk.receiver.failed is None and desk.thread.is_alive()  # it keeps trying


def test_a_broker_restart_is_shown_to_staff_as_disconnected_then_connected_again(make_desk):
    desk, broker = make_desk()
    sink = desk.start()
    broker.stop()
    wait_for(lambda: links(sink) == ["connected", "disconnected"], 30, "the lost link shown")
    assert not desk.receiver.connected.is_set()
    broker.start()
    wait_for(lambda: links(sink) == ["connected", "disconnected", "connected"], 30, "the link shown again")
    assert desk.receiver.connected.is_set()


def test_after_a_good_connection_the_next_reconnect_waits_the_shortest_delay_again(make_desk):
    """The backoff grows while the broker is away; once it accepts us, a later drop starts again
    from the shortest delay, not from where the last outage left it."""
    desk, broker = make_desk()
    delays = Delays()
    sink = desk.start(backoff=delays)
    broker.stop()
    wait_for(lambda: len(delays.chosen) >= 4, 30, "four failed reconnects")  # the next delay is 4-8 s
    broker.start()
    wait_for(lambda: links(sink).count("connected") == 2, 30, "the receiver back on the broker")
    before = len(delays.chosen)
    broker.restart()
    wait_for(lambda: links(sink).count("connected") == 3, 30, "the receiver back after the restart")
    assert delays.chosen[before] <= delays.low, delays.chosen


class RemovingSink(Sink):
    """Shows events; on the first event of `home` removes that home's key file and holds the
    batch (it is being recorded) until the test says the receiver has noticed the removal."""

    def __init__(self, desk: Desk, home: Home) -> None:
        super().__init__()
        self.desk, self.home = desk, home
        self.removed, self.go = threading.Event(), threading.Event()

    def event(self, message, received):
        super().event(message, received)
        if message.home == self.home.name and not self.removed.is_set():
            (self.desk.homes_dir / f"{self.home.name}.pub").unlink()
            self.removed.set()
            self.go.wait(20)


def test_a_home_removed_while_its_batch_is_in_hand_costs_its_ack_not_the_receiver(desk):
    """Un-enrolled between opening and acknowledging: nothing can be sealed to it, so no ack
    (it re-sends and is refused then); every other home is still served."""
    home = desk.home()
    sink = desk.start(RemovingSink(desk, home))
    message = home.send()
    assert sink.removed.wait(10), "the home's event was not shown"
    desk.probe.send(desk.probe_class, "probe", {})  # the next batch is opened while this one is recorded
    wait_for(lambda: home.name not in desk.homes.keys, 10, "the receiver to notice the removal")
    sink.go.set()
    desk.settle()
    assert desk.receiver.failed is None and desk.thread.is_alive()
    assert sink.shown(message.id) == 1 and message.id in [row[0] for row in desk.rows()]
    assert home.acked() == []


class StoppingSink(Sink):
    """Holds the recording of `home`'s first event (the sink shows it from the recorder thread)
    until some home is shown silent, which the receiving thread does after it last looked at the
    recording; then tells the receiver to stop and lets the recording finish."""

    def __init__(self, desk: Desk, home: Home) -> None:
        super().__init__()
        self.desk, self.home = desk, home
        self.held, self.go = threading.Event(), threading.Event()

    def event(self, message, received):
        super().event(message, received)
        if message.home == self.home.name and not self.held.is_set():
            self.held.set()
            self.go.wait(20)

    def presence(self, home, state):
        super().presence(home, state)
        if state == "silent" and self.held.is_set():
            self.desk.receiver.stop()
            self.go.set()


def test_a_batch_still_being_recorded_when_the_receiver_stops_is_acknowledged_on_the_way_out(desk):
    """Told to stop while a batch is being recorded: the receiver waits for the record and
    acknowledges it before it disconnects, so the home is not left re-sending what we have."""
    quiet, home = desk.home("quiet"), desk.home()
    sink = desk.start(StoppingSink(desk, home))
    quiet.status("online", NOW, heartbeat_s=60)
    desk.settle()
    message = home.send()
    assert sink.held.wait(10), "the event was not shown"
    desk.clock.advance(200)  # `quiet` falls silent at the receiver's next look: the stop comes then
    desk.thread.join(20)
    assert not desk.thread.is_alive() and sink.go.is_set()
    wait_for(lambda: message.id in home.acked(), 10, "the ack sent on the way out")
    assert sink.shown(message.id) == 1 and message.id in [row[0] for row in desk.rows()]
    desk.store.close()


def test_an_event_taken_in_before_the_store_failed_is_sent_again_by_the_broker_after_a_restart(desk):
    """The broker's PUBACK waits for the record: a receiver that stops with an event not yet
    recorded gets it again from its persistent session, and records and acknowledges it then."""
    desk.start()
    home = desk.home()
    holder = sqlite3.connect(desk.cfg.center.store, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    message = home.send()
    wait_for(lambda: "locked" in (desk.receiver.last_error or ""), 30, "the receiver to report the locked store")
    desk.stop()
    holder.execute("ROLLBACK")
    holder.close()
    sink = desk.start()
    wait_for(lambda: message.id in home.acked(), 30, "the ack from the restarted receiver")
    assert sink.shown(message.id) == 1 and message.id in [row[0] for row in desk.rows()]


# -- the broker's dropped-message counter --------------------------------------------------------


def away_session(pki, broker: Broker, topic: str) -> None:
    """A persistent session subscribed to topic, then away: the broker queues for it (and drops)."""
    cert, key = pki.client("center")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"away-{os.urandom(3).hex()}",
                         protocol=mqtt.MQTTv5)
    client.tls_set(ca_certs=str(pki.ca), certfile=str(cert), keyfile=str(key))
    subscribed = threading.Event()
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
    client.on_subscribe = lambda *a: subscribed.set()
    expiry = Properties(PacketTypes.CONNECT)
    expiry.SessionExpiryInterval = 600
    client.connect("127.0.0.1", broker.port, clean_start=True, properties=expiry)
    client.loop_start()
    assert subscribed.wait(10), "the away session did not subscribe"
    client.disconnect()
    client.loop_stop()


def dropped_warnings(desk: Desk) -> list[str]:
    return [w for w in list(desk.receiver.broker_warnings) if "dropped" in w]


def test_a_broker_dropping_for_a_full_queue_is_warned_of_with_each_rise_replacing_the_last(make_desk, pki):
    """Another persistent session (away, its queue 5) overflows: the broker counts the drops on
    $SYS, and the receiver keeps one warning that names the latest rise."""
    desk, broker = make_desk("sys_interval 1", max_queued=5)
    desk.start()
    home = desk.home()
    away_session(pki, broker, f"trygg/v1/{home.name}/up/#")
    for _ in range(6):  # the sixth does not fit: one drop (one drop cannot be counted in two readings)
        home.send("telemetry", "temperature", {"c": 20})
    desk.settle()
    [first] = wait_for(lambda: dropped_warnings(desk), 20, "the first dropped-message warning")
    assert "for 2 homes" in first  # the probe and this home
    desk.home()  # enrolled: the next warning names three homes
    desk.settle()
    home.send("telemetry", "temperature", {"c": 21})  # one more drop
    [rise] = wait_for(lambda: [w for w in dropped_warnings(desk) if "for 3 homes" in w] and dropped_warnings(desk),
                      20, "the warning of the rise")
    assert "the broker dropped 1 more message(s)" in rise, (first, rise)


def test_a_drop_warning_keeps_the_warning_of_what_the_connect_granted(desk):
    """Both stay on `trygg center receivers`: the queue too small for our homes (from the CONNACK),
    and the broker's count of drops (the lab broker runs Mosquitto's default limits)."""
    desk.home(), desk.home()  # with the probe, three homes: more than Mosquitto's default queue holds
    desk.start()
    [limits] = [w for w in desk.receiver.broker_warnings if "default limits" in w]
    # The shared test broker counts other tests' drops too, and its own readings may come in between:
    # what must hold is that the limits' warning stays, beside one warning of the latest drops.
    for rise in (7, 2):
        notes = desk.receiver.broker_notes
        notes.dropped(str((notes.dropped_count or 0) + rise).encode())  # as $SYS reads
        warnings = desk.receiver.broker_warnings
        assert warnings[0] == limits and len(warnings) == 2 and "for 3 homes" in warnings[1], warnings
        assert warnings[1].startswith("the broker ") and "dropped" in warnings[1], warnings


# -- mutants that survive, and why none can matter ---------------------------------------------------------------
# /work/shared/tools/mutate.py on center/receiver.py (selection: test_receiver_checks.py, this file, test_receiver_reading.py, the receiver
# tests of test_center_doctor.py, test_center_rounds.py's rounds-thread test) and on center/subscheck.py
# (test_subscheck.py, this file, test_receiver_reading.py, test_center_doctor.py), lines as at commit 94c62e5. Each line: where, the
# mutation, why it cannot change what staff see, what is recorded or what is acknowledged.
# receiver.py
# L86 `frozen=True` -> False on _Opened: no code assigns to a batch once opened: equivalent.
# L157 the rounds thread `daemon=False`: run() always stops and joins it in its finally: equivalent.
# L167 the finally's `if ticker is not None` block deleted: on a stop _stop is already set and the daemon rounds thread ends
#   on it; after a failure the service sees `failed` and exits; an alert the thread still raises meets the same sink.
# L176 the store-lost line's de-duplication compared, negated or deleted: how often one log line is written: logging only.
# L183/L185/L189/L195 the store wait before connecting deleted, negated, not called, without its ping or its pause: it connects
#   (or polls) while the store is away; every batch then fails to record and nothing is acknowledged (tested above and
#   in test_receiver_checks.py), so the broker keeps it all: connection churn or CPU only.
# L211 no PUBACK for a dropped probe: it holds one of RECEIVE_MAXIMUM (1500) in-flight slots until the next connect (redelivered then, dropped again); one probe per receiver connect: filling the window takes 1500 connects of other receivers within one of ours (not reached in a test).
# L280 `full` with `or`, `>`, or `opened_next is None`; L281/L282 its wait deleted; L283 `full`/`recording` negated in the poll timeout: flow control and latency only; every message is still opened, recorded and acknowledged in order.
# L285 the read-all loop with `or`, `<=`, deleted or negated; L287 no pump inside it: batch sizes only (one fsync per batch).
# L295 no _store_lost when a status cannot be stored: log line and last_error only; nothing is acknowledged all the same, and the store wait before reconnecting says it again.
# L304 `and` -> `or` / negated (silent tick): mark_silent runs on more turns; the store decides each silence once, so it is shown once: cost only.
# L313 no DISCONNECT on stop: the socket closes all the same, the session is kept (no will); the final ack was already written.
# L315 recorder.shutdown(wait=False) / removed: a recording left running when the link dropped still records once (the store decides what is new) and is not acknowledged on the dead link; the broker sends it again.
# L325 no _store_lost after a failed record: log line and last_error only; nothing is acknowledged, and the store wait before reconnecting reports the same.
# L326 `_pending = []` dropped after a failed record: what was read after it is sent again by the broker with the same packet ids; both copies deduplicated (shown once) and acknowledged.
# L327 `return False` -> `return None`: equivalent (the caller tests falsiness).
# L336/L337 handle() without its record or finish: handle() is the one-batch entry other test modules feed (test_center_rounds.py, test_doctor.py: not in this selection); the session runs the same three steps itself.
# L365 no "internal error" line for an unexpected exception: no input reaches it (every bad input is an EnvelopeError or ValueError); only a fault of the receiver's own callees does.
# L369 the 60 s tick deleted or negated / L370 no forget_full: only when test-limit buckets that have refilled are forgotten; a refilled bucket and a new one allow the same: memory only.
# L384 `if not accepted` deleted / L385 its `return`: an empty batch then records nothing and shows nothing all the same (an empty transaction): equivalent.
# L418 `if self.rounds is None or not wants(event)` deleted or with `and` / L419 its `return`: observe() ignores what it does not want; without a rounds desk the AttributeError is caught and logged: a log line per event, nothing else.
# L444 `synced = ... else True` -> `else False`: the value is only read for an alert, and with alerts it is the clock's: equivalent.
# Killed since, by tests in tests/test_center_rounds.py (each mutant applied by hand, each test failed): L448 a
#   visit_needed alert opening its case (`!=` / deleted): test_a_visit_needed_opens_a_case_and_a_look_in_due_does_not;
#   L456 no guess for a home without presence (`and` / deleted: AttributeError on None):
#   test_a_home_whose_presence_the_store_does_not_hold_gets_no_guess_either_way.
# subscheck.py
# L128 `now < deadline` -> `<=`: the verdict one poll (at most 0.5 s) later at exactly the deadline: equivalent.
# L130 `deadline = None` in Probe.overdue dropped: Reading asks only while it has no refusal, and the verdict it gets sets one: equivalent in the receiver (doctor.py does not call overdue).
# L145 `_subscribing` not set in __init__ / L170 `if mid != _subscribing[0]` deleted: a SUBACK can only answer one of the two SUBSCRIBEs made after subscribe(), which sets it: equivalent.
# L147 `_suback_refused = True` in __init__: subscribe() resets it at every connect before any SUBACK: equivalent.
# L180 `_suback_refused` not set by a refused SUBACK: with a SUBACK refusal standing the probe is never judged overdue, so no "receives nothing" from it is there to take back; it matters only if the SUBACK came later than the probe's 5 s wait.
# L186 the probe-publish warning's `if` negated: a log line only (the verdict is kept by Probe.publish_result either way).
# L193 `or` -> `and` in Reading.heard: every message then repeats hear() and an UNSUBSCRIBE of the probe's exact topic (already left): broker traffic only; nothing is taken back twice.
# L194 / L204 / L207 `return False`/`return []` -> `return None`: equivalent (callers test falsiness; L194 was once 'killed' by test_center_doctor.py's healthy-center test failing under load: a flake).
# L198 the probe's exact topic not left once heard: the wildcard covers it too, and only probes go there (its home segment is the receiver's own certificate name); they are dropped as before.

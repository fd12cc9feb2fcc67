"""What a receiver lane reads (split from test_receiver_link.py, same desk: tests/support/receiverdesk.py):
the loopback probe the broker takes but never delivers, a probe it will not take, a quiet lane that
reads, a verdict gone once the ACL is fixed, a backlog that arrives before the SUBACKs. Real Mosquitto
with the ACLs written here. Surviving mutants: the list at the end of test_receiver_link.py."""

import time

from center import subscheck
from tests.support.broker import ACL_TEXT
from tests.support.lab import wait_for
from tests.support.receiverdesk import links  # and its fixtures desk, make_desk (a plugin: conftest)

PROBE_DENIED_ACL = """user center
topic deny trygg/v1/center/up/test
topic readwrite trygg/v1/#
"""


def reads_only(*homes: str) -> str:
    """An ACL letting the center write anywhere but read only these homes' events (and statuses
    and acks): not its probe's topic, trygg/v1/center/up/test (its identity is a home id)."""
    return "user center\ntopic write trygg/v1/#\ntopic read trygg/v1/+/status\ntopic read trygg/v1/+/down/#\n" + \
        "".join(f"topic read trygg/v1/{home}/up/#\n" for home in homes)


def test_a_probe_the_broker_never_delivers_says_not_receiving_until_a_home_is_heard(make_desk, tmp_path):
    """Mosquitto grants the SUBSCRIBE and checks its ACL only at delivery: here it takes the
    receiver's probe but never delivers it. The lane is shown "not receiving" once the probe's
    wait runs out; the first home heard proves reading works and takes it back."""
    desk, broker = make_desk(acl="")
    home = desk.home()
    (tmp_path / "acl").write_text(reads_only(desk.probe.name, home.name))
    broker.restart()
    sink = desk.launch()
    wait_for(lambda: links(sink) == ["connected", "not receiving"], 30, "the lane shown not receiving")
    rx = desk.receiver
    [line] = rx.not_receiving
    assert subscheck.RECEIVES_NOTHING in line and "trygg/v1/center/up/test" in line and "'center'" in line
    assert rx.last_error == line and not rx.connected.is_set()
    assert [w for w in rx.broker_warnings if subscheck.RECEIVES_NOTHING in w] == [line]
    message = home.send()
    wait_for(lambda: message.id in home.acked(), 20, "the home's event acknowledged")
    assert links(sink) == ["connected", "not receiving", "connected"] and rx.connected.is_set()
    assert rx.not_receiving == [] and rx.last_error is None
    assert not [w for w in rx.broker_warnings if subscheck.RECEIVES_NOTHING in w]
    assert sink.shown(message.id) == 1 and message.id in [row[0] for row in desk.rows()]
    second = home.send()  # once heard, the lane stays as it is: no second "connected"
    wait_for(lambda: second.id in home.acked(), 20, "the second event acknowledged")
    assert links(sink) == ["connected", "not receiving", "connected"]


def test_once_the_acl_is_fixed_the_reconnected_lane_reads_and_the_old_verdict_is_gone(make_desk, tmp_path):
    """A verdict belongs to its connection: after the broker's ACL is fixed and restarted, nothing is
    left of "receives nothing" (no home needs to send anything for that)."""
    desk, broker = make_desk(acl="")
    (tmp_path / "acl").write_text(reads_only(desk.probe.name))
    broker.restart()
    sink = desk.launch()
    wait_for(lambda: links(sink) == ["connected", "not receiving"], 30, "the lane shown not receiving")
    (tmp_path / "acl").write_text(ACL_TEXT)
    broker.restart()
    wait_for(lambda: links(sink)[-1:] == ["connected"] and len(links(sink)) > 2, 30, "the lane back")
    time.sleep(subscheck.PROBE_WAIT_S + 1)  # its new probe came back: no new verdict either
    rx = desk.receiver
    assert links(sink)[2:] in (["connected"], ["disconnected", "connected"]) and rx.connected.is_set()
    assert rx.not_receiving == [] and rx.last_error is None
    assert not [w for w in rx.broker_warnings if subscheck.RECEIVES_NOTHING in w]


def test_a_probe_the_broker_will_not_take_is_a_warning_not_a_lane_shown_deaf(make_desk):
    """The broker refuses the probe's PUBLISH (its ACL denies the topic outright): reading cannot be
    checked this way, which is said on `trygg center receivers`; the lane stays connected."""
    desk, _ = make_desk(acl=PROBE_DENIED_ACL)
    sink = desk.launch()  # and nothing sent: no home's message may stand in for the probe
    rx = desk.receiver
    [warning] = wait_for(lambda: [w for w in rx.broker_warnings if "refused the probe publish" in w], 20,
                         "the warning that reading could not be checked")
    assert "trygg/v1/center/up/test" in warning and subscheck.RECEIVES_NOTHING not in warning
    time.sleep(subscheck.PROBE_WAIT_S + 1)  # past the probe's wait: no verdict of "receives nothing"
    assert links(sink) == ["connected"] and rx.connected.is_set() and rx.not_receiving == []
    assert rx.last_error is None and warning in rx.broker_warnings
    desk.settle()
    assert links(sink) == ["connected"] and rx.not_receiving == []


def test_a_quiet_lane_whose_probe_came_back_stays_connected_past_the_probes_wait(make_desk):
    """No home sends anything: the probe alone proves reading works, once; the lane stays connected."""
    desk, _ = make_desk()
    sink = desk.launch()
    wait_for(lambda: links(sink) == ["connected"], 20, "the lane connected")
    time.sleep(subscheck.PROBE_WAIT_S + 1.5)
    rx = desk.receiver
    assert links(sink) == ["connected"] and rx.connected.is_set() and rx.not_receiving == []
    assert rx.last_error is None and not [w for w in rx.broker_warnings if "probe" in w]


def test_a_backlog_waiting_in_the_session_at_reconnect_is_taken_in_and_the_link_stays_up(desk):
    """Alarms queued at the broker while the receiver was away arrive before its SUBACKs: they count
    as heard (no probe is sent then), are recorded and acknowledged, and the link is shown once."""
    desk.start()
    home = desk.home()
    desk.stop()
    waiting = [home.send() for _ in range(3)]
    sink = desk.start()
    wait_for(lambda: all(m.id in home.acked() for m in waiting), 20, "the backlog acknowledged")
    desk.settle()
    assert links(sink) == ["connected"] and desk.receiver.connected.is_set()
    assert desk.receiver.not_receiving == [] and desk.receiver.last_error is None
    assert all(sink.shown(m.id) == 1 for m in waiting)

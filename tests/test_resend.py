"""What the uplink sends again (agent/resend.py): lost messages at once, into silence only alarms and probes."""

from agent.resend import ALARM_FIRST_S, MIN_RTO_S, REORDER_S, Resends

RESEND_S = 30.0


def resends(max_round: int = 100) -> Resends:
    return Resends(RESEND_S, max_round)


def test_a_message_overtaken_by_a_later_acknowledged_one_goes_again_at_once():
    r = resends()
    r.sent("lost", 2, 0.0)
    r.sent("kept", 2, REORDER_S + 0.5)
    r.acked(["kept"], REORDER_S + 0.6)
    assert r.due(REORDER_S + 0.6, 10) == ["lost"]


def test_a_message_acknowledged_out_of_order_within_the_reorder_slack_is_not_sent_again():
    r = resends()
    r.sent("slow", 2, 0.0)
    r.sent("fast", 2, REORDER_S - 0.5)
    r.acked(["fast"], REORDER_S - 0.4)
    assert r.due(REORDER_S, 10) == []


def test_into_silence_only_alarms_and_one_probe_go_again():
    r = resends()
    r.sent("fall", 0, 0.0)
    for i in range(500):
        r.sent(f"t{i}", 2, 0.0)
    assert r.due(ALARM_FIRST_S - 0.1, 100) == []
    assert r.due(ALARM_FIRST_S, 100) == ["fall"]  # an alarm does not wait for the bulk window
    r.sent("fall", 0, ALARM_FIRST_S)
    assert r.due(RESEND_S - 0.1, 100) == ["fall"]  # its second wait is 4 s: long due by now
    r.sent("fall", 0, RESEND_S - 0.1)
    assert r.due(RESEND_S, 100) == ["t0"]
    r.sent("t0", 2, RESEND_S)
    assert r.due(RESEND_S + 0.1, 100) == []  # the probe's round is not answered yet
    total = 3
    for t in range(31, 600):  # ten minutes of a stalled receiver
        due = r.due(float(t), 100)
        for id_ in due:
            r.sent(id_, 0 if id_ == "fall" else 2, float(t))
        total += len(due)
    assert total <= 2 * (600 // RESEND_S + 1), f"{total} messages re-sent into ten minutes of silence"


def test_an_unacknowledged_alarm_goes_again_within_seconds_backing_off_to_the_bulk_window():
    r = resends()
    sends = [0.0]
    r.sent("fall", 0, 0.0)
    for tenth in range(1, 1200):  # two minutes, checked every 0.1 s
        now = tenth / 10
        if r.due(now, 10) == ["fall"]:
            r.sent("fall", 0, now)
            sends.append(now)
    waits = [round(b - a, 1) for a, b in zip(sends, sends[1:])]
    assert waits[:5] == [2.0, 4.0, 8.0, 16.0, 30.0]
    assert set(waits[5:]) == {30.0}
    r.acked(["fall"], 120.0)
    assert r.due(200.0, 10) == [] and len(r) == 0


def test_a_tail_whose_acknowledgement_was_lost_comes_back_in_doubling_rounds():
    r = resends()
    r.sent("earlier", 2, 0.0)
    r.acked(["earlier"], 0.05)  # the center answers within 50 ms: the time-out is MIN_RTO_S
    tail = [f"t{i}" for i in range(100)]
    for id_ in tail:
        r.sent(id_, 2, 0.1)
    # ... and the one ack covering the whole tail is lost.
    now, rounds = 0.1 + MIN_RTO_S, 0
    waiting = set(tail)
    while waiting:
        due = r.due(now, 100)
        assert due, f"nothing due at {now:.2f} s with {len(waiting)} still unacknowledged"
        for id_ in due:
            r.sent(id_, 2, now)
        now += 0.01
        r.acked(due, now)  # the center acknowledges each round at once
        waiting -= set(due)
        rounds += 1
    assert rounds <= 8, f"{rounds} rounds for a tail of 100"
    assert now < 0.1 + MIN_RTO_S + 1.0, "the rounds after the first must not wait for a time-out"


def test_an_unanswered_probe_round_starts_again_from_one():
    r = resends()
    for i in range(10):
        r.sent(f"t{i}", 2, 0.0)
    first = r.due(RESEND_S, 10)
    assert first == ["t0"]
    r.sent("t0", 2, RESEND_S)
    r.acked(["t0"], RESEND_S + 0.1)
    second = r.due(RESEND_S + 0.1, 10)
    assert second == ["t1", "t2"]  # the round came back: twice as many
    for id_ in second:
        r.sent(id_, 2, RESEND_S + 0.1)
    timeout = r.timeout(RESEND_S + 0.2)
    assert r.due(RESEND_S + 0.1 + timeout - 0.01, 10) == []
    assert r.due(RESEND_S + 0.1 + timeout, 10) == ["t3"]  # no answer: one at a time again


def test_the_time_out_follows_the_round_trip_and_falls_back_when_the_center_is_quiet():
    r = resends()
    assert r.timeout(0.0) == RESEND_S
    r.sent("a", 2, 0.0)
    r.acked(["a"], 3.0)
    assert r.timeout(3.0) == 12.0  # four round trips of 3 s
    assert r.timeout(3.0 + RESEND_S) == RESEND_S


def test_the_count_is_what_still_awaits_an_acknowledgement():
    r = resends()
    r.sent("a", 2, 0.0)
    r.sent("b", 2, 0.0)
    r.sent("a", 2, 1.0)  # a re-send is not a second message
    assert len(r) == 2
    r.acked(["a", "unknown"], 1.5)  # an id we never sent (or already forgot) is ignored
    assert len(r) == 1
    r.forget("b")
    assert len(r) == 0 and r.due(100.0, 10) == []


def test_a_forgotten_probe_does_not_hold_up_the_next_round():
    r = resends()
    for i in range(3):
        r.sent(f"t{i}", 2, 0.0)
    assert r.due(RESEND_S, 10) == ["t0"]
    r.forget("t0")  # acknowledged meanwhile, found gone from the outbox
    assert r.due(RESEND_S, 10) == ["t1"]


def test_acknowledgements_outside_a_probe_round_do_not_grow_the_rounds():
    r = resends()
    for i in range(5):
        r.sent(f"x{i}", 2, 0.0)
    r.acked([f"x{i}" for i in range(5)], 0.1)  # ordinary acks, no probe pending
    for i in range(10):
        r.sent(f"t{i}", 2, 1.0)
    assert r.due(1.0 + RESEND_S, 10) == ["t0"]  # still one probe at first


def test_the_edges_overtaken_exactly_and_the_limit():
    r = resends()
    r.sent("edge", 2, 0.0)  # exactly REORDER_S before the acknowledged one: late, not lost
    r.sent("ok", 2, REORDER_S)
    r.acked(["ok"], REORDER_S + 0.1)
    assert r.due(REORDER_S + 0.1, 10) == []
    r = resends()
    for i in range(5):
        r.sent(f"a{i}", 0, 0.0)
    assert r.due(RESEND_S, 3) == ["a0", "a1", "a2"]
    r = resends()  # lost ones count against the limit too
    for i in range(5):
        r.sent(f"e{i}", 2, 0.0)
    r.sent("ok", 2, REORDER_S + 0.5)
    r.acked(["ok"], REORDER_S + 0.6)
    assert r.due(REORDER_S + 0.6, 3) == ["e0", "e1", "e2"]


def test_an_alarm_both_lost_and_due_by_its_back_off_goes_once():
    r = resends()
    r.sent("fall", 0, 0.0)
    r.sent("ok", 2, REORDER_S + 1.0)
    r.acked(["ok"], REORDER_S + 1.1)
    assert r.due(ALARM_FIRST_S + 5, 10) == ["fall"]


def test_while_the_center_answers_an_alarm_keeps_its_own_back_off_and_is_never_a_probe():
    r = resends()
    r.sent("earlier", 2, 0.0)
    r.acked(["earlier"], 0.05)  # the center answers within 50 ms: the bulk time-out is MIN_RTO_S
    r.sent("fall", 0, 1.0)
    r.sent("t0", 2, 1.0)
    sends = [1.0]
    for tenth in range(11, 200):  # twenty seconds, the center answering other homes all along
        now = tenth / 10
        r.acked([], now)
        due = r.due(now, 10)
        if "fall" in due:
            r.sent("fall", 0, now)
            sends.append(now)
        assert due.count("fall") <= 1
    assert [round(b - a, 1) for a, b in zip(sends, sends[1:])] == [2.0, 4.0, 8.0]


# Mutants of agent/resend.py that survive these tests, and why they cannot matter (mutate.py, 97.8 %):
# - line 43, `self._round_at = float("-inf")` deleted: read only while a round is open, and set when one opens.
# - line 105, the alarm's `continue` deleted: it ends an elif chain, so nothing after it runs either way.

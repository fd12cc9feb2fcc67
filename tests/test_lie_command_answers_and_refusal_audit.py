"""What staff and auditors are told about commands must match what happened, once.

In-process on the hostile-commands bench (the real `Commands`, trust.db, audit, staff registry,
freshness and policy; a fake clock and a lock that records calls), and one test through the
real daemon and broker:

- two copies of one command judged at the same moment act once and get one answer;
- a validly signed body that does not decode is refused, audited with its signer's name and role,
  and (docs/protocol.md §13.6, step 4) gets no command_result: there is no command id to answer;
- refusals held back by the per-minute audit limit are written as one summary when the
  command handler stops (and when the daemon stops on SIGTERM), counted once.
"""

import sqlite3
import threading

import pytest

from agent.actions import build_actions
from agent.commands import MAX_COMMAND_BYTES, Commands
from agent.config import CommandsConfig
from protocol import topics
from tests.support.lab import RawCenter, wait_for
from tests.test_hostile_commands import HOME, STAFF, SUPPRESSED, TOPIC, Bench

GARBAGE = b"\x01"  # refused at the envelope: "envelope: envelope too short"


class BothPastTheReplayCheck:
    """The bench's real Freshness, except that `seen()` lets no caller on until two have asked:
    both copies of a command pass the replay-cache lookup before either records its id, which is
    the race `Freshness.remember` decides (whichever inserts the id first acts)."""

    def __init__(self, real) -> None:
        self.real = real
        self.barrier = threading.Barrier(2, timeout=5)

    def seen(self, command_id: str) -> bool:
        answer = self.real.seen(command_id)
        self.barrier.wait()
        return answer

    def __getattr__(self, name):
        return getattr(self.real, name)


@pytest.fixture
def bench(tmp_path):
    b = Bench(tmp_path)
    yield b
    if b.commands.alive():
        b.commands.stop()
    b.db.close()


def test_two_copies_of_one_command_judged_at_once_act_once_and_get_one_answer(bench):
    bench.commands.freshness = BothPastTheReplayCheck(bench.freshness)
    cmd = bench.command()
    payload = bench.seal(cmd)
    verdicts = []
    threads = [threading.Thread(target=lambda: verdicts.append(bench.handle(payload))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(v.outcome for v in verdicts) == ["done", "refused"], verdicts
    second = next(v for v in verdicts if v.outcome == "refused")
    assert second.replay and second.reason == "replayed: this command id was already received"
    assert bench.lock.calls == ["unlock"], "the door was driven twice for one command"
    assert [(r.kind, r.body["command"], r.body["outcome"]) for r in bench.reports] == [
        ("command_result", cmd.id, "done")], "staff got two answers to one command"
    assert sorted(d["outcome"] for d in bench.audited()) == ["done", "refused"]  # both copies audited


def test_two_copies_of_one_command_through_the_queue_act_once_and_get_one_answer(bench):
    cmd = bench.command()
    payload = bench.seal(cmd)
    bench.commands.submit(TOPIC, payload)  # the broker delivered it twice (QoS 1 redelivery, or a replay)
    bench.commands.submit(TOPIC, payload)
    bench.commands.start()
    wait_for(lambda: bench.commands.counts["done"] + bench.commands.counts["refused"] == 2, 5, "both copies judged")
    bench.commands.stop()
    assert bench.lock.calls == ["unlock"]
    assert [(r.body["command"], r.body["outcome"]) for r in bench.reports] == [(cmd.id, "done")]
    assert [(d["outcome"], d["command"]) for d in bench.audited()] == [("done", cmd.id), ("refused", cmd.id)]


@pytest.mark.parametrize("signer", ["berit", "rut"])  # rut is revoked: still named, it is her key
def test_malformed_command_validly_signed_is_refused_and_the_audit_names_its_signer(bench, signer):
    body = b'{"v":1,"t":"command","id":"not-a-uuid","home":"' + HOME.encode() + b'"}'
    verdict = bench.handle(bench.seal(body, signer=signer))
    assert verdict.outcome == "refused" and verdict.reason.startswith("malformed command: ")
    assert verdict.staff is not None and verdict.staff.name == signer
    [entry] = bench.audited()
    assert entry["outcome"] == "refused" and entry["reason"].startswith("malformed command: ")
    assert (entry["staff"], entry["role"], entry["command"], entry["action"]) == (signer, STAFF[signer], None, None)
    # No command_result: nothing decoded gives the id staff wait for (docs/protocol.md §13.6, step 4).
    assert bench.reports == [] and bench.lock.calls == []


def test_refusals_held_back_when_the_handler_stops_are_summarized_once(tmp_path):
    b = Bench(tmp_path, per_min=2)
    try:
        b.commands.start()
        for _ in range(5):
            b.commands.submit(TOPIC, GARBAGE)
        b.commands.submit(topics.ack(HOME), GARBAGE)
        wait_for(lambda: b.commands.counts["refused"] == 6, 5, "the refusals to be judged")
        assert len(b.audited()) == 2 and b.audited(SUPPRESSED) == []  # the minute is not over: nothing yet
        b.commands.stop()  # well inside the minute
        assert b.audited(SUPPRESSED) == [{"suppressed": 4, "by_reason": {"envelope": 3, "wrong topic": 1}}]
        assert b.commands.limiter.take_summary(final=True) is None  # counted once, not again
        assert b.audit.verify().ok
    finally:
        if b.commands.alive():
            b.commands.stop()
        b.db.close()


def test_refusals_held_back_when_the_daemon_stops_are_in_its_audit_trail(lab):
    home = lab.home("hem-held", commands={"refusals_audited_per_min": 2}).start()
    raw = RawCenter(lab)
    try:
        for _ in range(6):
            raw.publish(topics.command(home.id), GARBAGE)
        wait_for(lambda: home.status()["commands"]["refused"] == 6, 15, "the six refusals to be judged")
    finally:
        raw.close()
    assert home.stop() == 0
    entries = home.audit()
    assert [e["detail"]["outcome"] for e in entries if e["kind"] == "command"] == ["refused", "refused"]
    stop = max(i for i, e in enumerate(entries) if e["kind"] == "stop")
    summaries = [e["detail"] for e in entries if e["kind"] == SUPPRESSED]
    assert [s["suppressed"] for s in summaries] == [4]  # by_reason is sealed to the center on the device
    assert summaries[0].get("by_reason", {"envelope": 4}) == {"envelope": 4}
    assert [e["kind"] for e in entries[stop:]] == ["stop", SUPPRESSED]  # written at the stop, not a minute later


class AuditFailingOnce:
    """The bench's real audit log, except that writing one kind of entry fails once (a full SD card)."""

    def __init__(self, real, kind: str) -> None:
        self.real, self.kind, self.failed = real, kind, 0

    def append(self, kind: str, detail: dict, conn=None):
        if kind == self.kind and not self.failed:
            self.failed += 1
            raise sqlite3.OperationalError("database or disk is full")
        return self.real.append(kind, detail, conn)

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_a_refusal_summary_that_cannot_be_written_does_not_stop_commands_being_judged(tmp_path):
    # The summary is written on the command thread between messages; if writing it raised, that
    # thread ended and no unlock was judged again until the daemon restarted: every staff command
    # then ended as "no answer". The summary's counts go to the log instead, and judging goes on.
    b = Bench(tmp_path, per_min=1)
    try:
        b.commands.audit = AuditFailingOnce(b.audit, SUPPRESSED)
        b.commands.start()
        for _ in range(3):
            b.commands.submit(TOPIC, GARBAGE)
        wait_for(lambda: b.commands.counts["refused"] == 3, 5, "the refusals to be judged")
        b.clock.advance(61)  # minute over: the thread writes the summary, which fails
        wait_for(lambda: b.commands.audit.failed == 1, 5, "the summary write to fail")
        cmd = b.command()
        b.commands.submit(TOPIC, b.seal(cmd))
        wait_for(lambda: b.commands.counts["done"] == 1, 5, "the next command to be judged after the failed write")
        assert b.commands.alive() and b.lock.calls == ["unlock"]
        assert [(r.body["command"], r.body["outcome"]) for r in b.reports] == [(cmd.id, "done")]
    finally:
        if b.commands.alive():
            b.commands.stop()
        b.db.close()


def test_each_minutes_refusal_summary_counts_only_that_minute(bench):
    # A minute's suppressed refusals and drops are written once, in that minute's summary: never
    # again in the next one, never moved into an earlier one.
    limiter = bench.new_commands(CommandsConfig(refusals_audited_per_min=1)).limiter
    assert limiter.allow("envelope: one") and not limiter.allow("envelope: two")
    limiter.suppress("dropped: command queue full")
    bench.clock.advance(61)
    limiter.suppress("dropped: command queue full")  # the first thing counted in minute two
    assert limiter.take_summary() == {"suppressed": 2, "by_reason": {"envelope": 1, "dropped": 1}}
    assert limiter.allow("envelope: three")  # minute two's budget of one: the drop did not use it
    assert not limiter.allow("envelope: four")
    bench.clock.advance(61)
    assert limiter.take_summary() == {"suppressed": 2, "by_reason": {"dropped": 1, "envelope": 1}}
    bench.clock.advance(61)
    assert limiter.take_summary() is None and limiter.take_summary(final=True) is None


class SlowLock:
    """A lock whose bolt takes a while: unlock() returns once the test lets it."""

    def __init__(self) -> None:
        self.started, self.release = threading.Event(), threading.Event()

    def unlock(self, by: str = "") -> dict:
        self.started.set()
        assert self.release.wait(5)
        return {"state": "unlocked"}


def test_stopping_waits_for_the_command_being_carried_out_so_its_answer_and_audit_are_not_lost(bench):
    # The daemon closes the audit and the outbox right after the command handler stops: an unlock
    # still moving the bolt then must be answered and audited before stop() returns.
    slow = SlowLock()
    actions = build_actions({"front-door": slow}, status=lambda: {}, switch_center_key=lambda kid: kid)
    commands = Commands(HOME, bench.device, bench.staff, bench.freshness, bench.policy, bench.audit, actions,
                        bench.reports.append, bench.cfg.commands, bench.clock)
    commands.start()
    cmd = bench.command()
    commands.submit(TOPIC, bench.seal(cmd))
    assert slow.started.wait(5)
    threading.Timer(0.3, slow.release.set).start()
    commands.stop()
    assert [(r.body["command"], r.body["outcome"]) for r in bench.reports] == [(cmd.id, "done")]
    assert [(d["command"], d["outcome"]) for d in bench.audited()] == [(cmd.id, "done")]


def test_a_command_of_exactly_the_size_limit_is_judged_and_one_byte_more_is_refused_unopened(bench):
    at_limit = bench.handle(b"\x01" * MAX_COMMAND_BYTES)
    assert at_limit.outcome == "refused" and at_limit.reason.startswith("envelope: "), at_limit  # opened, not sized out
    over = bench.handle(b"\x01" * (MAX_COMMAND_BYTES + 1))
    assert over.reason == f"oversized: {MAX_COMMAND_BYTES + 1} bytes (limit {MAX_COMMAND_BYTES})"


def test_an_allowed_action_this_device_cannot_carry_out_fails_with_that_reason(bench):
    actions = build_actions({"front-door": bench.lock}, status=lambda: {}, switch_center_key=lambda kid: kid)
    del actions["ping"]  # a device built without it (as one without a camera has no lookin)
    commands = Commands(HOME, bench.device, bench.staff, bench.freshness, bench.policy, bench.audit, actions,
                        bench.reports.append, bench.cfg.commands, bench.clock)
    cmd = bench.command(action="ping", args={})
    verdict = commands.handle(TOPIC, bench.seal(cmd))
    assert (verdict.outcome, verdict.reason) == ("failed", "this device cannot ping")
    assert [(r.body["command"], r.body["outcome"], r.body["reason"]) for r in bench.reports] == [
        (cmd.id, "failed", "this device cannot ping")]
    assert [(d["outcome"], d["reason"]) for d in bench.audited()] == [("failed", "this device cannot ping")]


def test_the_command_thread_reports_alive_while_it_runs_and_not_after_stop(bench):
    # alive() feeds the daemon's systemd watchdog: a false "dead" restarts the home, a false "alive" hides a hang.
    assert bench.commands.alive() is False
    bench.commands.start()
    assert bench.commands.alive() is True
    bench.commands.stop()
    assert bench.commands.alive() is False

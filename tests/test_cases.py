"""Alarm cases on the store, against both backends (SQLite and a real PostgreSQL): opening and
joining, the state machine, signed staff actions, escalation exactly once with two receivers,
the hash-chained case log, and nothing readable at rest. Bad input: one clear error, nothing
changed."""

import threading
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from base.keys import Identity
from center import caselog
from center.atrest import Sealer
from center.cases import CaseDesk, CaseError
from center.staffsign import SignatureRefused, SignedAction
from center.store import EventStore, Received
from protocol.ids import new_id
from protocol.messages import EventMessage

T0 = 1_764_000_000.0
CENTER = Identity.generate("center")
STAFF = {name: Identity.generate(name) for name in ("anna", "bo", "cilla")}
CFG = SimpleNamespace(accept_within_s=90.0, escalate_times=3, on_site_within_s=1800.0,
                      outcomes={"helped": "Hjälpt", "false_alarm": "Falsklarm"}, on_call=["cilla"])


def desk_on(store: EventStore) -> CaseDesk:
    return CaseDesk(store.db, Sealer([CENTER], "test/"), CFG, lambda n: STAFF[n].public() if n in STAFF else None)


@pytest.fixture
def store(store_url):
    s = EventStore(store_url)
    yield s
    s.close()


def event(home: str, kind: str, cls: str = "alarm", at: float = T0, body: dict | None = None) -> EventMessage:
    return EventMessage(id=new_id(), home=home, cls=cls, kind=kind, time=datetime.fromtimestamp(at, timezone.utc),
                        clock_synced=True, body=body or {})


def receive(store: EventStore, *events: EventMessage, at: float = T0) -> list[Received]:
    """What the receiver does with a batch: record, and open cases in the same transaction."""
    desk = desk_on(store)
    by_id = {e.id: e for e in events}
    rows = [Received(e.id, e.home, e.cls, f"trygg/v1/{e.home}/up/{e.cls}", b"sealed", at) for e in events]
    return store.record(rows, lambda tx, new: desk.on_events(tx, [(by_id[r.id], r.received) for r in new]))


def act(desk: CaseDesk, who: str, case_id: str, action: str, now: float, **args):
    return desk.act(SignedAction.make(STAFF[who], case_id, action, now, args), now)


def test_a_bed_exit_then_a_fall_then_the_help_button_is_one_case_with_three_alarms(store):
    alarms = [event("hem-1", k) for k in ("bed_exit", "fall", "help")]
    for i, alarm in enumerate(alarms):
        receive(store, alarm, at=T0 + i)
    receive(store, event("hem-2", "fall"), event("hem-1", "door_closed", cls="event"),
            event("hem-1", "test", cls="test"))
    cases = desk_on(store).listing()
    assert sorted(c.home for c in cases) == ["hem-1", "hem-2"]
    one = next(c for c in cases if c.home == "hem-1")
    assert (one.state, one.kinds, one.alarms, one.opened) == ("open", ["bed_exit", "fall", "help"],
                                                               [a.id for a in alarms], T0)


def test_the_same_alarm_taken_in_by_two_receivers_at_once_is_one_case_and_one_feed_row(store_url):
    stores = [EventStore(store_url) for _ in range(2)]
    alarm = event("hem-1", "fall")
    threads = [threading.Thread(target=receive, args=(s, alarm)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(desk_on(stores[0]).listing()) == 1
    assert stores[0].db.query("SELECT COUNT(*) FROM feed WHERE type = 'event'") == [(1,)]
    assert stores[0].db.query("SELECT COUNT(*) FROM feed WHERE type = 'case'") == [(1,)]
    for s in stores:
        s.close()


def test_accept_on_site_close_records_who_when_and_the_response_times(store):
    receive(store, event("hem-1", "fall"))
    desk = desk_on(store)
    case_id = desk.listing()[0].id
    act(desk, "anna", case_id, "accept", T0 + 40)
    act(desk, "anna", case_id, "on_site", T0 + 600)
    closed = act(desk, "anna", case_id, "close", T0 + 900, outcome="helped", note="satt på golvet, ingen skada")
    out = closed.to_json()
    assert (out["state"], out["accepted_by"], out["outcome"], out["note"]) == \
        ("closed", "anna", "helped", "satt på golvet, ingen skada")
    assert out["response_s"] == {"to_accept": 40.0, "to_on_site": 600.0, "to_close": 900.0}
    assert [h["action"] for h in desk.history(case_id)] == ["opened", "accept", "on_site", "close"]
    assert [h.get("by") for h in desk.history(case_id)] == [None, "anna", "anna", "anna"]


def test_a_confirmed_unlock_by_the_staff_member_who_took_it_records_on_site_by_itself(store):
    receive(store, event("hem-1", "fall"))
    desk = desk_on(store)
    case_id = desk.listing()[0].id
    act(desk, "anna", case_id, "accept", T0 + 30)
    receive(store, event("hem-1", "command_result", cls="event",
                         body={"action": "unlock", "outcome": "done", "staff": "bo"}), at=T0 + 200)
    assert desk.get(case_id).state == "accepted"  # bo's unlock is not anna's arrival
    receive(store, event("hem-1", "command_result", cls="event",
                         body={"action": "unlock", "outcome": "done", "staff": "anna"}), at=T0 + 300)
    case = desk.get(case_id)
    assert (case.state, case.on_site, case.on_site_by) == ("on_site", T0 + 300, "anna")


@pytest.mark.parametrize("steps, attempt, message", [
    ([], ("anna", "nonexistent-case", "accept", {}), "no case"),
    ([("anna", "close", {"outcome": "helped"})], ("bo", None, "close", {"outcome": "helped"}), "already closed"),
    ([], ("anna", None, "close", {"outcome": "nothing_happened"}), "outcome must be one of helped, false_alarm"),
    ([], ("anna", None, "forward", {}), "forward needs --to"),
    ([], ("anna", None, "forward", {"to": "dora"}), "'dora' is not an enrolled staff member"),
    ([("anna", "accept", {})], ("bo", None, "accept", {}), "accepted by anna: it cannot be accepted"),
    ([], ("anna", None, "reopen", {}), "not closed: nothing to reopen"),
])
def test_a_case_action_that_cannot_be_done_says_why_and_changes_nothing(store, steps, attempt, message):
    receive(store, event("hem-1", "fall"))
    desk = desk_on(store)
    case_id = desk.listing()[0].id
    for who, action, args in steps:
        act(desk, who, case_id, action, T0 + 10, **args)
    before = (desk.get(case_id), desk.history(case_id), store.db.query("SELECT COUNT(*) FROM feed"))
    who, target, action, args = attempt
    with pytest.raises(CaseError, match=message):
        act(desk, who, target or case_id, action, T0 + 20, **args)
    assert (desk.get(case_id), desk.history(case_id), store.db.query("SELECT COUNT(*) FROM feed")) == before


def test_nobody_can_act_in_a_staff_members_name(store):
    receive(store, event("hem-1", "fall"))
    desk = desk_on(store)
    case_id = desk.listing()[0].id
    impostor = Identity.generate("anna")  # a key with her name, not hers
    with pytest.raises(SignatureRefused, match="not signed by anna's staff key"):
        desk.act(SignedAction.make(impostor, case_id, "accept", T0, {}), T0)
    stranger = Identity.generate("dora")
    with pytest.raises(SignatureRefused, match="not an enrolled staff member"):
        desk.act(SignedAction.make(stranger, case_id, "accept", T0, {}), T0)
    with pytest.raises(SignatureRefused, match="not fresh"):
        desk.act(SignedAction.make(STAFF["anna"], case_id, "accept", T0 - 3600, {}), T0)
    signed = SignedAction.make(STAFF["anna"], case_id, "accept", T0, {})
    edited = SignedAction(signed.statement.replace(b'"anna"', b'"bo"'), signed.signature)
    with pytest.raises(SignatureRefused):
        desk.act(edited, T0)
    assert desk.get(case_id).state == "open"


def test_forward_and_reopen(store):
    receive(store, event("hem-1", "fall"))
    desk = desk_on(store)
    case_id = desk.listing()[0].id
    act(desk, "anna", case_id, "accept", T0 + 10)
    assert act(desk, "anna", case_id, "forward", T0 + 20, to="bo").accepted_by == "bo"
    act(desk, "bo", case_id, "close", T0 + 30, outcome="false_alarm")
    reopened = act(desk, "cilla", case_id, "reopen", T0 + 40)
    assert (reopened.state, reopened.outcome, reopened.accepted_by) == ("open", None, None)


def test_escalations_and_overdue_are_raised_once_each_by_two_receivers_racing(store_url):
    stores = [EventStore(store_url) for _ in range(2)]
    receive(stores[0], event("hem-1", "fall"))
    receive(stores[0], event("hem-2", "help"), at=T0 + 5)
    desks = [desk_on(s) for s in stores]
    hem2 = next(c.id for c in desks[0].listing() if c.home == "hem-2")
    act(desks[0], "anna", hem2, "accept", T0 + 20)
    raised: list = []
    for now in (T0 + 89, T0 + 91, T0 + 200, T0 + 300, T0 + 400, T0 + 1900):
        threads = [threading.Thread(target=lambda d=d: raised.extend(d.escalate(now))) for d in desks]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    hem1 = next(c for c in desks[0].listing() if c.home == "hem-1")
    assert sorted((flag, n) for case, flag, n in raised if case == hem1.id) == \
        [("escalated", 1), ("escalated", 2), ("escalated", 3), ("on_call", 0), ("overdue", 0)]
    assert [(flag, n) for case, flag, n in raised if case == hem2] == [("overdue", 0)]  # accepted: never escalated
    assert [e["to"] for e in hem1.escalations] == ["shift", "shift", "shift", "on_call", "shift"]
    assert hem1.escalation_count == 3 and hem1.overdue
    called = [e for e in desks[1].history(hem1.id) if e["action"] == "on_call"]
    assert [e["to"] for e in called] == [["cilla"]]  # the log keeps who was on call at the time
    for s in stores:
        s.close()


def test_the_case_log_is_a_chain_that_names_the_first_entry_removed_or_changed(store):
    receive(store, event("hem-1", "fall"))
    desk = desk_on(store)
    case_id = desk.listing()[0].id
    for action, args in (("accept", {}), ("on_site", {}), ("close", {"outcome": "helped"})):
        act(desk, "anna", case_id, action, T0 + 10, **args)
    assert caselog.verify(store.db).ok and caselog.verify(store.db).entries == 4
    seqs = [r[0] for r in store.db.query("SELECT seq FROM case_log ORDER BY seq")]
    with store.db.tx() as tx:
        tx.execute("UPDATE case_log SET action = 'close_quietly' WHERE seq = ?", (seqs[2],))
    check = caselog.verify(store.db)
    assert (check.ok, check.first_bad) == (False, seqs[2]) and "changed" in check.problem
    with store.db.tx() as tx:
        tx.execute("DELETE FROM case_log WHERE seq = ?", (seqs[1],))
    check = caselog.verify(store.db)
    assert (check.ok, check.first_bad) == (False, seqs[2]) and "removed or reordered" in check.problem


def test_at_rest_only_routing_and_times_are_readable(store):
    receive(store, event("hem-1", "fall"))
    desk = desk_on(store)
    case_id = desk.listing()[0].id
    act(desk, "anna", case_id, "accept", T0 + 10)
    act(desk, "anna", case_id, "close", T0 + 20, outcome="helped", note="Karin hade ont i höften")
    dump = repr([store.db.query(f"SELECT * FROM {table}") for table in ("cases", "case_log", "case_flags", "feed")])
    for secret in ("fall", "anna", "helped", "Karin", "höften"):
        assert secret not in dump, secret
    assert "hem-1" in dump and case_id in dump  # routing stays readable: that is documented


def test_a_visit_needed_from_the_rounds_opens_a_case(store):
    desk = desk_on(store)
    with store.db.tx() as tx:
        desk.on_visit_needed(tx, "hem-3", "not seen on retry", T0)
    [case] = desk.listing(open_only=True)
    assert (case.home, case.kinds, case.alarms, case.note) == ("hem-3", ["visit_needed"], [], "not seen on retry")


def test_schema_migrations_run_once_even_when_two_receivers_start_together(store_url):
    results: list = []

    def start():
        s = EventStore(store_url)
        results.append(s.db.query("SELECT version FROM schema_version ORDER BY version"))
        s.close()
    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and all(r == results[0] for r in results) and len(results[0]) >= 2


def test_listing_resolving_and_the_json_a_script_reads(store):
    receive(store, event("hem-1", "fall"), at=T0)
    receive(store, event("hem-2", "help"), at=T0 + 3600)
    desk = desk_on(store)
    old = next(c for c in desk.listing() if c.home == "hem-1")
    act(desk, "anna", old.id, "close", T0 + 100, outcome="helped")
    assert [c.home for c in desk.listing()] == ["hem-2", "hem-1"]  # open first
    assert [c.home for c in desk.listing(open_only=True)] == ["hem-2"]
    assert [c.home for c in desk.listing(since=T0 + 1800)] == ["hem-2"]
    assert desk.open_case_of("hem-1") is None and desk.open_case_of("hem-2").kinds == ["help"]
    assert desk.resolve(old.id[-8:].upper()) == old.id
    with pytest.raises(CaseError, match="last 6 or more"):
        desk.resolve("abc")
    with pytest.raises(CaseError, match="no case 'ffffffffffff'"):
        desk.resolve("ffffffffffff")
    out = desk.get(old.id).to_json()
    assert (out["opened"], out["closed"], out["accepted"]) == ("2025-11-24T16:00:00.000Z", "2025-11-24T16:01:40.000Z",
                                                               None)


def test_the_devices_help_coming_answer_is_kept_once_and_a_missing_one_is_replaced(store):
    receive(store, event("hem-1", "fall"))
    desk = desk_on(store)
    case_id = desk.listing()[0].id
    act(desk, "anna", case_id, "accept", T0 + 5)
    desk.record_help_coming(case_id, {"outcome": "no_answer", "reason": "home offline", "staff": "anna"}, T0 + 20)
    assert desk.get(case_id).help_coming["outcome"] == "no_answer"
    answer = {"action": "help_coming", "outcome": "done", "staff": "anna", "led": "on", "spoken": True, "x": 1}
    receive(store, event("hem-1", "command_result", cls="event", body=answer), at=T0 + 30)
    kept = desk.get(case_id).help_coming
    assert kept == {"outcome": "done", "led": "on", "spoken": True, "at": "2025-11-24T16:00:30.000Z"}
    desk.record_help_coming(case_id, {"outcome": "failed", "staff": "anna"}, T0 + 40)  # the same answer, later
    assert desk.get(case_id).help_coming == kept
    assert [h["action"] for h in desk.history(case_id)].count("help_coming") == 2


def test_forwarding_an_untaken_case_gives_it_to_the_colleague(store):
    receive(store, event("hem-1", "fall"))
    desk = desk_on(store)
    case_id = desk.listing()[0].id
    case = act(desk, "anna", case_id, "forward", T0 + 10, to="bo")
    assert (case.state, case.accepted_by, case.accepted) == ("accepted", "bo", T0 + 10)
    with pytest.raises(CaseError, match="already bo's"):
        act(desk, "anna", case_id, "forward", T0 + 11, to="bo")
    case = act(desk, "cilla", case_id, "on_site", T0 + 12)
    assert (case.state, case.on_site_by, case.accepted_by) == ("on_site", "cilla", "bo")

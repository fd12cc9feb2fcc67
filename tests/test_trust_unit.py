"""Unit tests for the signed-command trust core: audit chain, freshness, policy, staff registry.

Real SQLite files (tmp_path), a fake clock injected everywhere (no sleeps), and raw sqlite3
on the same file to play the attacker who edits trust.db behind the daemon's back.
"""

import sqlite3
import struct
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent import freshness as freshness_mod
from agent.audit import GENESIS, AuditLog, entry_hash
from agent.config import DAYS, CommandsConfig, DeviceConfig, VisitWindow
from agent.errors import ConfigError, KeyFileError
from agent.freshness import GRACE_S, Freshness
from agent.keys import Identity
from agent.policy import Policy, in_window
from agent.protocol.envelope import signer_kid
from agent.protocol.ids import new_id
from agent.protocol.messages import CommandMessage
from agent.staff import StaffRegistry, check_name
from agent.trustdb import TrustDB

UTC = timezone.utc
T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)  # a Monday; whole seconds keep float edges exact


class FakeClock:
    """The daemon's clock interface, every reading settable."""

    def __init__(self, wall: datetime = T0, mono: float = 1000.0, synced: bool = True) -> None:
        self.wall, self.mono, self.is_synced = wall, mono, synced

    def now(self) -> datetime:
        return self.wall

    def time(self) -> float:
        return self.wall.timestamp()

    def monotonic(self) -> float:
        return self.mono

    def synced(self) -> bool:
        return self.is_synced

    def advance(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def db(tmp_path):
    with TrustDB(tmp_path / "trust.db") as d:
        yield d


def raw(db: TrustDB) -> sqlite3.Connection:
    """A second, plain connection to the same file: what someone with a shell could do."""
    return sqlite3.connect(db.path, isolation_level=None)


def filled_log(db, clock, n=5) -> AuditLog:
    log = AuditLog(db, clock)
    for i in range(n):
        clock.is_synced = i % 2 == 0
        log.append("command" if i % 2 else "staff_added", {"i": i, "name": "Åsa", "lock": "front-door"})
        clock.advance(0.25)
    return log


# ---------------------------------------------------------------- audit ----------------------

def test_appended_entries_form_a_hash_chain_from_genesis_with_recorded_head(db, clock):
    log = filled_log(db, clock, 3)
    got = log.entries()
    assert [e.seq for e in got] == [1, 2, 3]
    assert got[0].prev == GENESIS and got[1].prev == got[0].hash and got[2].prev == got[1].hash
    assert [e.synced for e in got] == [True, False, True]
    assert got[1].detail == {"i": 1, "name": "Åsa", "lock": "front-door"} and got[1].kind == "command"
    for e in got:
        stored = db.read("SELECT detail FROM audit WHERE seq = ?", (e.seq,))[0][0]
        assert e.hash == entry_hash(e.prev, e.seq, e.time, e.synced, e.kind, stored)
    assert db.setting("audit_head") == f"3:{got[2].hash}"
    assert log.verify().ok and log.verify().entries == 3


def test_entries_filter_by_time_and_by_seq(db, clock):
    log = filled_log(db, clock, 5)
    times = [e.time for e in log.entries()]
    assert [e.seq for e in log.entries(since=times[2])] == [3, 4, 5]
    assert [e.seq for e in log.entries(after_seq=3)] == [4, 5]
    assert [e.seq for e in log.entries(since=times[1], after_seq=3, limit=1)] == [4]
    assert log.entries(since=times[4] + 1) == []


def test_empty_log_verifies(db, clock):
    verdict = AuditLog(db, clock).verify()
    assert verdict.ok and verdict.entries == 0 and verdict.bad_seq is None


def test_entry_appended_in_a_rolled_back_transaction_leaves_no_trace(db, clock):
    log = filled_log(db, clock, 2)
    head = db.setting("audit_head")
    with pytest.raises(RuntimeError):
        with db.write() as conn:
            log.append("staff_added", {"name": "x"}, conn)
            raise RuntimeError("the enrollment failed")
    assert [e.seq for e in log.entries()] == [1, 2] and db.setting("audit_head") == head
    assert log.verify().ok


@pytest.mark.parametrize("change", [
    "detail = replace(detail, 'front-door', 'back-door')",
    "kind = 'staff_removed'",
    "time = time + 0.001",
    "synced = 1 - synced",
])
def test_verify_names_the_altered_entry(db, clock, change):
    log = filled_log(db, clock)
    raw(db).execute(f"UPDATE audit SET {change} WHERE seq = 3")
    verdict = log.verify()
    assert not verdict.ok and verdict.bad_seq == 3 and "altered" in verdict.reason and verdict.entries == 2


def test_verify_names_a_removed_middle_entry(db, clock):
    log = filled_log(db, clock)
    raw(db).execute("DELETE FROM audit WHERE seq = 3")
    verdict = log.verify()
    assert not verdict.ok and verdict.bad_seq == 3 and "missing" in verdict.reason


def test_verify_names_the_first_of_two_swapped_entries(db, clock):
    log = filled_log(db, clock)
    c = raw(db)
    cols = "time, synced, kind, detail, prev, hash"
    a, b = (c.execute(f"SELECT {cols} FROM audit WHERE seq = ?", (s,)).fetchone() for s in (2, 3))
    c.execute("BEGIN")
    for seq, row in ((2, b), (3, a)):
        c.execute("UPDATE audit SET time=?, synced=?, kind=?, detail=?, prev=?, hash=? WHERE seq=?", (*row, seq))
    c.execute("COMMIT")
    verdict = log.verify()
    assert not verdict.ok and verdict.bad_seq == 2 and "does not follow" in verdict.reason


@pytest.mark.parametrize("keep, bad", [(3, 4), (4, 5), (0, 1)])
def test_verify_detects_entries_cut_off_the_end(db, clock, keep, bad):
    log = filled_log(db, clock)
    raw(db).execute("DELETE FROM audit WHERE seq > ?", (keep,))
    verdict = log.verify()
    assert not verdict.ok and verdict.bad_seq == bad and verdict.entries == keep
    assert f"entries {bad}..5 were removed" in verdict.reason


def test_verify_detects_a_rewritten_head(db, clock):
    log = filled_log(db, clock)
    raw(db).execute("UPDATE settings SET value = ? WHERE key = 'audit_head'", ("5:" + "ab" * 32,))
    verdict = log.verify()
    assert not verdict.ok and verdict.bad_seq == 5 and "recorded head" in verdict.reason


def test_unsent_entries_are_those_after_the_last_marked_sent(db, clock):
    log = filled_log(db, clock, 4)
    assert [e.seq for e in log.unsent()] == [1, 2, 3, 4]
    assert [e.seq for e in log.unsent(limit=2)] == [1, 2]
    log.mark_sent(2)
    assert [e.seq for e in log.unsent()] == [3, 4]
    log.mark_sent(4)
    assert log.unsent() == []
    log.append("stop", {})
    assert [e.seq for e in log.unsent()] == [5]
    assert log.verify().ok  # the sent marker is not part of the chain


class InterleavedDB(TrustDB):
    """Runs a hook right after the first read of the audit table (another process appending)."""

    hook = None

    def read(self, sql, args=()):
        rows = super().read(sql, args)
        if self.hook and "FROM audit" in sql:
            hook, self.hook = self.hook, None
            hook()
        return rows


def test_verify_does_not_report_tampering_when_the_daemon_appends_meanwhile(tmp_path, clock):
    # BUG (agent/audit.py:88-98): verify() reads the audit rows and the recorded head in two
    # separate statements (two snapshots). When the daemon appends an entry in between (as it
    # does while a technician runs `trygg audit verify`), the head is one ahead of the rows
    # read and verify reports "entries N+1..N+1 were removed from the end" on an intact log.
    # Both reads should happen in one read transaction.
    with InterleavedDB(tmp_path / "trust.db") as cli_db, TrustDB(tmp_path / "trust.db") as daemon_db:
        filled_log(daemon_db, clock, 3)
        daemon = AuditLog(daemon_db, clock)
        cli_db.hook = lambda: daemon.append("command", {"late": True})
        verdict = AuditLog(cli_db, clock).verify()
        assert verdict.ok, verdict.reason


def test_verify_reports_an_entry_retyped_as_blob_instead_of_crashing(db, clock):
    # BUG (agent/audit.py:93 -> entry_hash, line 41): a detail (or kind) column changed to a
    # BLOB, e.g. `UPDATE audit SET detail = CAST(detail AS BLOB)`, makes verify() raise
    # TypeError ("Object of type bytes is not JSON serializable") instead of returning a
    # Verdict naming the entry; `trygg audit verify` then crashes rather than report tampering.
    log = filled_log(db, clock)
    raw(db).execute("UPDATE audit SET detail = CAST(detail AS BLOB) WHERE seq = 2")
    verdict = log.verify()
    assert not verdict.ok and verdict.bad_seq == 2


COLUMNS = ("seq", "time", "synced", "kind", "detail", "prev", "hash")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_single_change_to_any_audit_row_breaks_verify_at_that_row(tmp_path_factory, data):
    db = getattr(test_any_single_change_to_any_audit_row_breaks_verify_at_that_row, "_db", None)
    if db is None:  # one log for all examples; each example restores what it changed
        db = TrustDB(tmp_path_factory.mktemp("prop") / "trust.db")
        filled_log(db, FakeClock(), 5)
        test_any_single_change_to_any_audit_row_breaks_verify_at_that_row._db = db
    log, c = AuditLog(db, FakeClock()), raw(db)
    seq = data.draw(st.integers(1, 5), label="seq")
    col = data.draw(st.sampled_from(COLUMNS), label="column")
    old = c.execute(f"SELECT {col} FROM audit WHERE seq = ?", (seq,)).fetchone()[0]
    if col == "seq":
        new = seq + 100
    elif col == "synced":
        new = 1 - old
    elif col == "time":  # flip one mantissa bit: a different finite float
        bit = data.draw(st.integers(0, 51), label="bit")
        new = struct.unpack("<d", struct.pack("<Q", struct.unpack("<Q", struct.pack("<d", old))[0] ^ (1 << bit)))[0]
    else:
        i = data.draw(st.integers(0, len(old) - 1), label="position")
        ch = data.draw(st.characters(min_codepoint=1, max_codepoint=127, exclude_characters=[old[i]]), label="char")
        new = old[:i] + ch + old[i + 1:]
    where = seq + 100 if col == "seq" else seq
    c.execute(f"UPDATE audit SET {col} = ? WHERE seq = ?", (new, seq))
    try:
        verdict = log.verify()
        assert not verdict.ok and verdict.bad_seq == seq, verdict
    finally:
        c.execute(f"UPDATE audit SET {col} = ? WHERE seq = ?", (old, where))
        c.close()
    assert log.verify().ok


# ---------------------------------------------------------------- freshness ------------------

HOME = "hem-1"
CFG = CommandsConfig(max_lifetime_s=300, clock_skew_s=30, challenge_ttl_s=600)


def tokens():
    n = iter(range(1, 10**6))
    return lambda: f"{next(n):032x}"


def cmd(issued=T0, lifetime=60.0, challenge=None, action="unlock", args=None, id=None) -> CommandMessage:
    return CommandMessage(id=id or new_id(int(issued.timestamp() * 1000)), home=HOME, action=action,
                          args={"lock": "front-door"} if args is None else args, issued=issued,
                          expires=issued + timedelta(seconds=lifetime), challenge=challenge)


@pytest.fixture
def calls():
    return []


@pytest.fixture
def fresh(db, clock, calls):
    return Freshness(db, clock, CFG, on_new_challenge=lambda: calls.append(1), token=tokens())


@pytest.mark.parametrize("offset, ok", [
    (-30, True), (-30.5, False),     # device clock earlier than issued: skew allowed
    (0, True), (60, True),
    (90, True), (90.5, False),       # after expires (issued + 60): skew allowed
])
def test_synced_clock_accepts_only_inside_the_window_widened_by_the_skew(fresh, clock, offset, ok):
    clock.wall = T0 + timedelta(seconds=offset)
    reason = fresh.refusal(cmd(T0, 60))
    assert (reason is None) == ok, reason
    if not ok:
        assert "future" in reason if offset < 0 else "expired" in reason


def test_lifetime_longer_than_allowed_is_refused(fresh):
    assert fresh.refusal(cmd(T0, 300)) is None
    assert "exceeds the allowed 300 s" in fresh.refusal(cmd(T0, 301))
    assert "exceeds" in fresh.refusal(cmd(T0, 301, challenge=fresh.challenge))


@pytest.mark.parametrize("lifetime", [0, -10])
def test_command_expiring_before_it_was_issued_is_refused(fresh, lifetime):
    assert fresh.refusal(cmd(T0, lifetime)) == "expires before it was issued"


def test_unsynced_clock_needs_the_current_challenge(fresh, clock):
    clock.is_synced, clock.wall = False, datetime(2020, 1, 1, tzinfo=UTC)  # stale after a power cut
    assert "not synchronized" in fresh.refusal(cmd(T0))
    assert fresh.refusal(cmd(T0, challenge=fresh.challenge)) is None
    assert "wrong challenge" in fresh.refusal(cmd(T0, challenge="f" * 32))


def test_wrong_challenge_is_refused_even_with_a_synced_clock(fresh):
    assert "wrong challenge" in fresh.refusal(cmd(T0, challenge="e" * 32))


def test_challenge_is_renewed_once_a_command_used_it(fresh, clock, calls):
    clock.is_synced = False
    first = fresh.challenge
    used = cmd(T0, challenge=first)
    assert fresh.remember(used) is True
    assert fresh.challenge != first and calls == [1]
    assert "wrong challenge" in fresh.refusal(cmd(T0, challenge=first))
    assert fresh.refusal(cmd(T0, challenge=fresh.challenge)) is None
    assert fresh.remember(used) is False and calls == [1]  # a replay does not use up the new one
    assert fresh.remember(cmd(T0)) is True and calls == [1]  # nor does a command without one


def test_timed_renewal_keeps_the_previous_challenge_only_for_the_grace(fresh, clock, calls):
    clock.is_synced = False
    old = fresh.challenge
    clock.advance(599.9)
    fresh.tick()
    assert fresh.challenge == old and calls == []
    clock.advance(0.1)
    fresh.tick()
    new = fresh.challenge
    assert new != old and calls == [1]
    clock.advance(GRACE_S - 0.1)
    fresh.tick()
    assert fresh.refusal(cmd(T0, challenge=old)) is None and fresh.refusal(cmd(T0, challenge=new)) is None
    clock.advance(0.1)
    assert "wrong challenge" in fresh.refusal(cmd(T0, challenge=old))
    assert fresh.refusal(cmd(T0, challenge=new)) is None and fresh.challenge == new


def test_replayed_command_id_is_refused_after_restart(tmp_path, clock):
    once = cmd(T0)
    with TrustDB(tmp_path / "trust.db") as db:
        f = Freshness(db, clock, CFG)
        assert f.remember(once) is True and f.remember(once) is False
    with TrustDB(tmp_path / "trust.db") as db:
        f = Freshness(db, clock, CFG)
        assert f.remember(once) is False
        assert f.remember(cmd(T0)) is True


def test_prune_forgets_expired_ids_only_by_a_synced_clock(db, fresh, clock):
    short, long = cmd(T0, 10), cmd(T0, 100)  # kept until +40 and +130 (expires + skew)
    assert fresh.remember(short) and fresh.remember(long)
    clock.advance(60)
    clock.is_synced = False
    assert fresh.prune() == 0 and db.read("SELECT COUNT(*) FROM seen_commands")[0][0] == 2
    clock.is_synced = True
    assert fresh.prune() == 1
    assert [r[0] for r in db.read("SELECT id FROM seen_commands")] == [long.id]
    assert fresh.remember(long) is False


def test_replay_cache_is_capped_evicting_the_soonest_expiring(db, fresh, clock, monkeypatch):
    monkeypatch.setattr(freshness_mod, "MAX_REMEMBERED", 2)
    clock.is_synced = False
    a, b, c = cmd(T0, 50), cmd(T0, 10), cmd(T0, 100)
    for m in (a, b, c):
        fresh.remember(m)
    assert fresh.prune() == 1
    assert sorted(r[0] for r in db.read("SELECT id FROM seen_commands")) == sorted([a.id, c.id])


@settings(max_examples=200, deadline=None)
@given(issued=st.integers(-1000, 1000), lifetime=st.integers(-5, 400), now=st.integers(-1500, 1500))
def test_synced_freshness_matches_the_documented_window(tmp_path_factory, issued, lifetime, now):
    db = TrustDB(tmp_path_factory.getbasetemp() / "fresh-prop.db")
    try:
        clock = FakeClock(wall=T0 + timedelta(seconds=now))
        reason = Freshness(db, clock, CFG).refusal(cmd(T0 + timedelta(seconds=issued), lifetime))
    finally:
        db.close()
    expected = 0 < lifetime <= 300 and issued - 30 <= now <= issued + lifetime + 30
    assert (reason is None) == expected, reason


# ---------------------------------------------------------------- policy ---------------------

BROKER = {"host": "localhost", "ca": "ca.pem", "cert": "c.pem", "key": "k.pem"}
RULE_ROLES = ["r-always", "r-never", "r-alarm", "r-visit", "r-either", "r-unlisted"]


def device_config(**sections) -> DeviceConfig:
    return DeviceConfig.model_validate({"home": {"id": HOME}, "broker": BROKER, **sections})


def rules_policy(clock, visits=({"start": "21:00", "end": "23:00"},)) -> Policy:
    cfg = device_config(
        roles={r: ["unlock", "lock"] for r in RULE_ROLES},
        locks={"door": {"unlock": {"r-always": "always", "r-never": "never", "r-alarm": "alarm",
                                   "r-visit": "visit", "r-either": "alarm_or_visit"}, "visits": list(visits)}},
        commands={"alarm_open_s": 120})
    return Policy(cfg, clock)


def test_roles_may_give_only_their_listed_actions(clock):
    p = Policy(device_config(), clock)
    assert "role technician may not give the command 'unlock'" in p.refusal("technician", "unlock", {"lock": "front-door"})
    assert p.refusal("technician", "switch_center_key", {"kid": "ab"}) is None
    assert "may not give the command 'switch_center_key'" in p.refusal("nurse", "switch_center_key", {"kid": "ab"})
    assert p.refusal("nurse", "ping", {}) is None and p.refusal("nurse", "unlock", {"lock": "front-door"}) is None
    assert "may not give" in p.refusal("cleaner", "ping", {})


@pytest.mark.parametrize("role, action, args, expect", [
    ("nurse", "selfdestruct", {}, "unknown action 'selfdestruct'"),
    ("nurse", "ping", {"lock": "front-door"}, "unknown argument(s) for ping: lock"),
    ("nurse", "unlock", {"lock": "front-door", "force": True}, "unknown argument(s) for unlock: force"),
    ("nurse", "unlock", {"lock": "back-door"}, "no lock named 'back-door'"),
    ("nurse", "lock", {}, "no lock named None"),
    ("nurse", "unlock", {"lock": 7}, "no lock named 7"),
])
def test_unknown_actions_arguments_and_locks_are_refused(clock, role, action, args, expect):
    assert expect in Policy(device_config(), clock).refusal(role, action, args)


@pytest.mark.parametrize("role, quiet, alarm, visit", [
    ("r-always", True, True, True), ("r-never", False, False, False), ("r-alarm", False, True, False),
    ("r-visit", False, False, True), ("r-either", False, True, True), ("r-unlisted", False, False, False),
])
def test_unlock_rule_decides_per_role(clock, role, quiet, alarm, visit):
    p = rules_policy(clock)
    assert (p.refusal(role, "unlock", {"lock": "door"}) is None) == quiet  # 14:00 local, no alarm
    p.note_alarm()
    assert (p.refusal(role, "unlock", {"lock": "door"}) is None) == alarm
    clock.advance(120)  # alarm closed; now 14:02 local
    clock.wall = datetime(2026, 5, 4, 19, 30, tzinfo=UTC)  # 21:30 in Stockholm (CEST)
    assert (p.refusal(role, "unlock", {"lock": "door"}) is None) == visit
    assert p.refusal(role, "lock", {"lock": "door"}) is None  # locking is never restricted


def test_alarm_stays_open_for_alarm_open_s_on_the_monotonic_clock(clock):
    p = rules_policy(clock)
    assert "only while an alarm" in p.refusal("r-alarm", "unlock", {"lock": "door"})
    p.note_alarm()
    clock.is_synced, clock.wall = False, datetime(2001, 1, 1, tzinfo=UTC)  # wall time is irrelevant
    clock.mono += 119.9
    assert p.alarm_open() and p.refusal("r-alarm", "unlock", {"lock": "door"}) is None
    clock.mono += 0.1
    assert not p.alarm_open() and "only while an alarm" in p.refusal("r-alarm", "unlock", {"lock": "door"})


def test_visit_windows_are_refused_with_the_reason_when_the_clock_is_unsynced(clock):
    p = rules_policy(clock)
    clock.wall, clock.is_synced = datetime(2026, 5, 4, 19, 30, tzinfo=UTC), False  # inside, but untrusted
    assert "device clock not synchronized" in p.refusal("r-visit", "unlock", {"lock": "door"})
    assert "clock not synchronized" in p.refusal("r-either", "unlock", {"lock": "door"})
    p.note_alarm()
    assert p.refusal("r-either", "unlock", {"lock": "door"}) is None


@pytest.mark.parametrize("utc, inside", [
    # 2026-03-29 02:00 CET -> 03:00 CEST: 21:00-23:00 local is 20-22 UTC before, 19-21 UTC after
    ("2026-03-28T19:59", False), ("2026-03-28T20:00", True), ("2026-03-28T21:59", True), ("2026-03-28T22:00", False),
    ("2026-03-29T18:59", False), ("2026-03-29T19:00", True), ("2026-03-29T20:59", True), ("2026-03-29T21:00", False),
    # 2026-10-25 03:00 CEST -> 02:00 CET: back to 20-22 UTC
    ("2026-10-24T18:59", False), ("2026-10-24T19:00", True), ("2026-10-24T20:59", True), ("2026-10-24T21:00", False),
    ("2026-10-25T19:59", False), ("2026-10-25T20:00", True), ("2026-10-25T21:59", True), ("2026-10-25T22:00", False),
])
def test_visit_window_is_local_time_on_both_sides_of_daylight_saving_changes(clock, utc, inside):
    p = rules_policy(clock)
    clock.wall = datetime.fromisoformat(utc).replace(tzinfo=UTC)
    assert (p.refusal("r-visit", "unlock", {"lock": "door"}) is None) == inside


@pytest.mark.parametrize("utc, inside", [
    ("2026-03-28T20:59", False), ("2026-03-28T21:00", True),   # Sat 22:00 CET: the window opens
    ("2026-03-29T03:59", True), ("2026-03-29T04:00", False),   # Sun 06:00 CEST (after the change): closes
    ("2026-03-29T20:00", False),                               # Sun 22:00: not a visit day
    ("2026-03-28T00:30", False),                               # Sat 01:30 belongs to Friday's night
])
def test_night_window_belongs_to_its_start_day_across_the_spring_change(clock, utc, inside):
    p = rules_policy(clock, visits=[{"start": "22:00", "end": "06:00", "days": ["sat"]}])
    clock.wall = datetime.fromisoformat(utc).replace(tzinfo=UTC)
    assert (p.refusal("r-visit", "unlock", {"lock": "door"}) is None) == inside


def test_visit_day_is_the_local_weekday_not_the_utc_one(clock):
    p = rules_policy(clock, visits=[{"start": "00:30", "end": "01:30", "days": ["mon"]}])
    clock.wall = datetime(2026, 5, 3, 22, 45, tzinfo=UTC)  # Sunday in UTC, Monday 00:45 in Stockholm
    assert p.refusal("r-visit", "unlock", {"lock": "door"}) is None
    clock.wall = datetime(2026, 5, 4, 22, 45, tzinfo=UTC)  # Tuesday 00:45 local
    assert "planned visit window" in p.refusal("r-visit", "unlock", {"lock": "door"})


def _minutes(hhmm: str) -> int:
    return int(hhmm[:2]) * 60 + int(hhmm[3:])


hhmm = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59))


@settings(max_examples=500)
@given(local=st.datetimes(datetime(2026, 1, 1), datetime(2027, 1, 1)), start=hhmm, end=hhmm,
       days=st.lists(st.sampled_from(DAYS), unique=True))
def test_in_window_agrees_with_minutes_of_the_week(local, start, end, days):
    window = VisitWindow(start=start, end=end, days=days)
    t = local.weekday() * 1440 + local.hour * 60 + local.minute
    length = (_minutes(end) - _minutes(start)) % 1440
    expected = any((t - DAYS.index(d) * 1440 - _minutes(start)) % (7 * 1440) < length for d in days)
    assert in_window(local, window) == expected


# ---------------------------------------------------------------- staff ----------------------

@pytest.fixture
def staff(db, clock):
    return StaffRegistry(db, AuditLog(db, clock), dict(device_config().roles))


def kid_of(identity: Identity) -> bytes:
    return signer_kid(identity.public().sign)


def test_add_list_and_remove_a_staff_member(staff, clock):
    anna, berit = Identity.generate("anna"), Identity.generate("berit")
    member = staff.add("berit", berit.public(), "nurse")
    staff.add("anna", anna.public(), "night-staff")
    assert member.active and member.role == "nurse" and member.kid == kid_of(berit).hex()
    assert member.enrolled_at == clock.time()
    assert [m.name for m in staff.members()] == ["anna", "berit"]
    assert staff.get("anna").public.sign.public_bytes_raw() == anna.public().sign.public_bytes_raw()
    clock.advance(5)
    gone = staff.remove("anna")
    assert not gone.active and gone.revoked_at == clock.time() and gone.to_json()["active"] is False
    with pytest.raises(ConfigError, match="no enrolled staff member named 'anna'"):
        staff.remove("anna")
    with pytest.raises(ConfigError, match="no enrolled staff member"):
        staff.remove("nobody")


def test_role_must_exist_in_the_config(staff):
    with pytest.raises(ConfigError, match="--role must be one of night-staff, nurse, technician"):
        staff.add("anna", Identity.generate("anna").public(), "janitor")
    assert staff.members() == [] and staff.audit.entries() == []


@pytest.mark.parametrize("name, ok", [
    ("a", True), ("a" * 63, True), ("0berit.s_2-x", True),
    ("", False), ("a" * 64, False), ("Anna", False), ("-anna", False), (".anna", False),
    ("anna berg", False), ("anna\n", False), ("åsa", False), ("anna/x", False),
])
def test_staff_names_are_validated(staff, name, ok):
    key = Identity.generate("x").public()
    if ok:
        assert staff.add(name, key, "nurse").name == name
    else:
        with pytest.raises(ConfigError, match="staff name must be"):
            staff.add(name, key, "nurse")
        assert staff.members() == []


@given(st.text(alphabet="abz09._-A \n/å", max_size=70))
def test_check_name_accepts_exactly_the_documented_rule(name):
    ok = 1 <= len(name) <= 63 and name[0] in "abz09" and all(c in "abz09._-" for c in name)
    if ok:
        assert check_name(name) == name
    else:
        with pytest.raises(ConfigError):
            check_name(name)


def test_enrolling_an_active_name_again_needs_force(staff):
    old, new = Identity.generate("anna"), Identity.generate("anna2")
    staff.add("anna", old.public(), "night-staff")
    with pytest.raises(ConfigError, match="already enrolled; use --force"):
        staff.add("anna", new.public(), "nurse")
    assert staff.get("anna").role == "night-staff"
    replaced = staff.add("anna", new.public(), "nurse", force=True)
    assert replaced.role == "nurse" and replaced.kid == kid_of(new).hex()
    assert staff.by_kid(kid_of(old)) is None and staff.by_kid(kid_of(new)).name == "anna"
    assert staff.audit.entries()[-1].detail["replaced"] is True
    staff.remove("anna")
    assert staff.add("anna", old.public(), "nurse").active  # a removed name may be enrolled again


def test_one_key_cannot_be_enrolled_for_two_people(staff):
    shared = Identity.generate("shared").public()
    staff.add("anna", shared, "night-staff")
    for force in (False, True):
        with pytest.raises(KeyFileError, match="already enrolled for 'anna'"):
            staff.add("berit", shared, "nurse", force=force)
    assert [m.name for m in staff.members()] == ["anna"] and len(staff.audit.entries()) == 1


def test_removed_member_is_still_found_by_key_but_revoked(staff):
    anna = Identity.generate("anna")
    staff.add("anna", anna.public(), "night-staff")
    assert staff.by_kid(kid_of(anna)).active
    staff.remove("anna")
    found = staff.by_kid(kid_of(anna))
    assert found.name == "anna" and found.active is False
    assert staff.signer_lookup(kid_of(anna)).public_bytes_raw() == anna.public().sign.public_bytes_raw()
    assert staff.by_kid(b"\x00" * len(kid_of(anna))) is None
    staff.add("berit", anna.public(), "nurse")  # the revoked key handed on: the active holder wins
    assert staff.by_kid(kid_of(anna)).name == "berit"


def test_enrollment_through_another_connection_is_seen_at_the_next_lookup(tmp_path, clock):
    path = tmp_path / "trust.db"
    anna = Identity.generate("anna")
    with TrustDB(path) as daemon_db, TrustDB(path) as cli_db:
        roles = dict(device_config().roles)
        daemon = StaffRegistry(daemon_db, AuditLog(daemon_db, clock), roles)
        cli = StaffRegistry(cli_db, AuditLog(cli_db, clock), roles)
        assert daemon.by_kid(kid_of(anna)) is None  # caches the empty enrollment
        cli.add("anna", anna.public(), "night-staff")
        assert daemon.by_kid(kid_of(anna)).name == "anna"
        cli.remove("anna")
        assert daemon.by_kid(kid_of(anna)).active is False


def test_every_enrollment_change_is_audited_in_the_chain(staff):
    anna = Identity.generate("anna")
    staff.add("anna", anna.public(), "night-staff")
    staff.add("anna", anna.public(), "nurse", force=True)
    staff.remove("anna")
    kid = kid_of(anna).hex()
    assert [(e.kind, e.detail) for e in staff.audit.entries()] == [
        ("staff_added", {"name": "anna", "role": "night-staff", "kid": kid, "replaced": False}),
        ("staff_added", {"name": "anna", "role": "nurse", "kid": kid, "replaced": True}),
        ("staff_removed", {"name": "anna", "role": "nurse", "kid": kid}),
    ]
    assert staff.audit.verify().ok

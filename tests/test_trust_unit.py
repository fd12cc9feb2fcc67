"""Unit tests for the signed-command trust core: audit chain, freshness, policy, staff registry.

Real SQLite files (tmp_path), a fake clock injected everywhere (no sleeps), and raw sqlite3
on the same file to play the attacker who edits trust.db behind the daemon's back.
"""

import itertools
import sqlite3
import struct
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.audit import GENESIS, AuditLog, entry_hash
from agent.config import DAYS, CommandsConfig, DeviceConfig, VisitWindow
from base.errors import ConfigError, KeyFileError
from agent.freshness import GRACE_S, Freshness
from base.keys import Identity
from agent.policy import Policy, in_window
from protocol.envelope import signer_kid
from protocol.ids import new_id
from protocol.messages import CommandMessage
from agent.staff import StaffRegistry, check_name
from agent.trustdb import TrustDB
from tests.support.fakes import FakeClock

UTC = timezone.utc
T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)  # a Monday; whole seconds keep float edges exact


@pytest.fixture
def clock():
    return FakeClock(T0)


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
    assert AuditLog(db, clock).verify().ok


def test_entry_appended_in_a_rolled_back_transaction_leaves_no_trace(db, clock):
    log = filled_log(db, clock, 2)
    head = db.setting("audit_head")
    with pytest.raises(RuntimeError):
        with db.write() as conn:
            log.append("staff_added", {"name": "x"}, conn)
            raise RuntimeError("the enrollment failed")
    assert [e.seq for e in log.entries()] == [1, 2] and db.setting("audit_head") == head
    assert log.verify().ok


SWAP_2_3 = "UPDATE audit SET seq = 99 WHERE seq = 2; UPDATE audit SET seq = 2 WHERE seq = 3; " \
           "UPDATE audit SET seq = 3 WHERE seq = 99"  # rows 2 and 3 trade places (seq is the rowid)
FAKE_HEAD = "UPDATE settings SET value = '5:" + "ab" * 32 + "' WHERE key = 'audit_head'"


@pytest.mark.parametrize("tamper, bad, entries, reason", [
    ("UPDATE audit SET detail = replace(detail, 'front-door', 'back-door') WHERE seq = 3", 3, 2, "altered"),
    ("UPDATE audit SET kind = 'staff_removed' WHERE seq = 3", 3, 2, "altered"),
    ("UPDATE audit SET time = time + 0.001 WHERE seq = 3", 3, 2, "altered"),
    ("UPDATE audit SET synced = 1 - synced WHERE seq = 3", 3, 2, "altered"),
    ("DELETE FROM audit WHERE seq = 3", 3, 2, "entry 3 is missing"),
    (SWAP_2_3, 2, 1, "entry 2 does not follow entry 1"),
    ("DELETE FROM audit WHERE seq > 3", 4, 3, "entries 4..5 were removed from the end"),
    ("DELETE FROM audit WHERE seq = 5", 5, 4, "entries 5..5 were removed from the end"),
    ("DELETE FROM audit", 1, 0, "entries 1..5 were removed from the end"),
    (FAKE_HEAD, 5, 5, "entry 5 does not match the recorded head"),
], ids=["detail", "kind", "time", "synced", "middle-removed", "swapped", "tail-cut", "last-cut", "all-cut", "head"])
def test_verify_names_the_first_tampered_entry(db, clock, tamper, bad, entries, reason):
    log = filled_log(db, clock)
    raw(db).executescript(tamper)
    verdict = log.verify()
    assert (verdict.ok, verdict.bad_seq, verdict.entries) == (False, bad, entries)
    assert reason in verdict.reason


def test_entries_filter_by_time_and_seq_and_unsent_follows_mark_sent(db, clock):
    log = filled_log(db, clock, 4)
    times = [e.time for e in log.entries()]
    assert [e.seq for e in log.entries(since=times[2])] == [3, 4] and log.entries(since=times[3] + 1) == []
    assert [e.seq for e in log.entries(since=times[1], after_seq=2, limit=1)] == [3]
    assert [e.seq for e in log.unsent()] == [1, 2, 3, 4]
    assert [e.seq for e in log.unsent(limit=2)] == [1, 2]
    log.mark_sent(2)
    assert [e.seq for e in log.unsent()] == [3, 4]
    log.mark_sent(4)
    assert log.unsent() == []
    log.append("stop", {})
    assert [e.seq for e in log.unsent()] == [5]
    assert log.verify().ok  # the sent marker is not part of the chain


class _HookedConnection:
    """A connection that runs a hook right after its first read of the audit table."""

    def __init__(self, conn, owner):
        self.conn, self.owner = conn, owner

    def execute(self, sql, args=()):
        cursor = self.conn.execute(sql, args)
        rows = cursor.fetchall()
        if self.owner.hook and "FROM audit" in sql:
            self.owner.hook, hook = None, self.owner.hook
            hook()
        return _Rows(rows)


class _Rows(list):
    def fetchall(self):
        return list(self)

    def fetchone(self):
        return self[0] if self else None


class InterleavedDB(TrustDB):
    """Another process appends right after verify's first read of the audit table."""
    hook = None

    def snapshot(self):
        from contextlib import contextmanager

        @contextmanager
        def hooked():
            with TrustDB.snapshot(self) as conn:
                yield _HookedConnection(conn, self)
        return hooked()


def test_verify_does_not_report_tampering_when_the_daemon_appends_meanwhile(tmp_path, clock):
    # verify() reads the rows and the recorded head inside one read transaction, so an entry the
    # daemon appends between the two reads is simply not seen (not mistaken for a cut tail).
    with InterleavedDB(tmp_path / "trust.db") as cli_db, TrustDB(tmp_path / "trust.db") as daemon_db:
        filled_log(daemon_db, clock, 3)
        daemon = AuditLog(daemon_db, clock)
        appended = []
        cli_db.hook = lambda: appended.append(daemon.append("command", {"late": True}))
        verdict = AuditLog(cli_db, clock).verify()
        assert appended, "the hook must have run between the reads"
        assert verdict.ok and verdict.entries == 3, verdict.reason
        assert AuditLog(cli_db, clock).verify().entries == 4


def test_verify_reports_an_entry_retyped_as_blob_instead_of_crashing(db, clock):
    # A detail column changed to a BLOB (`UPDATE audit SET detail = CAST(detail AS BLOB)`) is
    # tampering too: verify names the entry rather than crash.
    log = filled_log(db, clock)
    raw(db).execute("UPDATE audit SET detail = CAST(detail AS BLOB) WHERE seq = 2")
    verdict = log.verify()
    assert not verdict.ok and verdict.bad_seq == 2


COLUMNS = ("seq", "time", "synced", "kind", "detail", "prev", "hash")


@pytest.fixture(scope="module")
def module_db(tmp_path_factory):
    """One file for all examples of a property; examples restore whatever they change."""
    with TrustDB(tmp_path_factory.mktemp("prop") / "trust.db") as d:
        yield d


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_single_change_to_any_audit_row_breaks_verify_at_that_row(module_db, data):
    db = module_db
    if not db.read("SELECT COUNT(*) FROM audit")[0][0]:
        filled_log(db, FakeClock(T0), 5)
    log, c = AuditLog(db, FakeClock(T0)), raw(db)
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


def cmd(issued=T0, lifetime=60.0, challenge=None) -> CommandMessage:
    return CommandMessage(id=new_id(int(issued.timestamp() * 1000)), home=HOME, action="unlock",
                          args={"lock": "front-door"}, issued=issued,
                          expires=issued + timedelta(seconds=lifetime), challenge=challenge)


@pytest.fixture
def fresh(db, clock):
    calls = []
    n = itertools.count(1)
    f = Freshness(db, clock, CFG, on_new_challenge=lambda: calls.append(1), token=lambda: f"{next(n):032x}")
    f.calls = calls  # how often a new challenge was announced
    return f


@pytest.mark.parametrize("offset, ok", [  # the command is issued at 0 and expires at 60; skew 30
    (-30, True), (-30.5, False), (0, True), (60, True), (90, True), (90.5, False)])
def test_synced_clock_accepts_only_inside_the_window_widened_by_the_skew(fresh, clock, offset, ok):
    clock.wall = T0 + timedelta(seconds=offset)
    reason = fresh.refusal(cmd(T0, 60))
    assert (reason is None) == ok, reason
    if not ok:
        assert "future" in reason if offset < 0 else "expired" in reason


def test_lifetime_longer_than_allowed_or_negative_is_refused(fresh):
    assert fresh.refusal(cmd(T0, 300)) is None
    assert "exceeds the allowed 300 s" in fresh.refusal(cmd(T0, 301))
    assert "exceeds" in fresh.refusal(cmd(T0, 301, challenge=fresh.challenge))
    assert fresh.refusal(cmd(T0, 0)) == fresh.refusal(cmd(T0, -10)) == "expires before it was issued"


def test_unsynced_clock_needs_the_current_challenge_and_wrong_ones_are_refused(fresh, clock):
    clock.is_synced, clock.wall = False, datetime(2020, 1, 1, tzinfo=UTC)  # stale after a power cut
    assert "not synchronized" in fresh.refusal(cmd(T0))
    assert fresh.refusal(cmd(T0, challenge=fresh.challenge)) is None
    assert "wrong challenge" in fresh.refusal(cmd(T0, challenge="f" * 32))
    clock.is_synced, clock.wall = True, T0  # a wrong challenge is refused whatever the clock
    assert "wrong challenge" in fresh.refusal(cmd(T0, challenge="e" * 32))


def test_challenge_is_renewed_once_a_command_used_it(fresh, clock):
    clock.is_synced = False
    first = fresh.challenge
    used = cmd(T0, challenge=first)
    assert fresh.remember(used) is True
    assert fresh.challenge != first and fresh.calls == [1]
    assert "wrong challenge" in fresh.refusal(cmd(T0, challenge=first))
    assert fresh.refusal(cmd(T0, challenge=fresh.challenge)) is None
    assert fresh.remember(used) is False and fresh.calls == [1]  # a replay does not use up the new one
    assert fresh.remember(cmd(T0)) is True and fresh.calls == [1]  # nor does a command without one


def test_timed_renewal_keeps_the_previous_challenge_only_for_the_grace(fresh, clock):
    clock.is_synced = False
    old = fresh.challenge
    clock.mono = 1000 + 599.5  # created at monotonic 1000, ttl 600
    fresh.tick()
    assert fresh.challenge == old and fresh.calls == []
    clock.mono = 1600.0
    fresh.tick()
    new = fresh.challenge
    assert new != old and fresh.calls == [1]
    clock.mono = 1600 + GRACE_S - 0.5
    fresh.tick()
    assert fresh.refusal(cmd(T0, challenge=old)) is None and fresh.refusal(cmd(T0, challenge=new)) is None
    clock.mono = 1600 + GRACE_S
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


@settings(max_examples=200, deadline=None)
@given(issued=st.integers(-1000, 1000), lifetime=st.integers(-5, 400), now=st.integers(-1500, 1500))
def test_synced_freshness_matches_the_documented_window(module_db, issued, lifetime, now):
    clock = FakeClock(wall=T0 + timedelta(seconds=now))
    reason = Freshness(module_db, clock, CFG).refusal(cmd(T0 + timedelta(seconds=issued), lifetime))
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
                                   "r-visit": "visit", "r-either": "alarm_or_visit"}, "visits": list(visits),
                        "relay": {"pin": 17}, "bolt": {"pin": 27}, "door": {"pin": 22}}},
        commands={"alarm_open_s": 120})
    return Policy(cfg, clock)


@pytest.mark.parametrize("role, action, args, expect", [
    ("technician", "unlock", {"lock": "front-door"}, "role technician may not give the command 'unlock'"),
    ("nurse", "switch_center_key", {"kid": "ab"}, "role nurse may not give the command 'switch_center_key'"),
    ("cleaner", "ping", {}, "role cleaner may not give the command 'ping'"),
    ("nurse", "selfdestruct", {}, "unknown action 'selfdestruct'"),
    ("nurse", "ping", {"lock": "front-door"}, "unknown argument(s) for ping: lock"),
    ("nurse", "unlock", {"lock": "front-door", "force": True}, "unknown argument(s) for unlock: force"),
    ("nurse", "unlock", {"lock": "back-door"}, "no lock named 'back-door' in this home (known: front-door)"),
    ("nurse", "lock", {}, "no lock named None"),
    ("nurse", "unlock", {"lock": 7}, "no lock named 7"),
    ("technician", "switch_center_key", {"kid": "ab"}, None), ("technician", "lock", {"lock": "front-door"}, None),
    ("nurse", "ping", {}, None), ("nurse", "unlock", {"lock": "front-door"}, None),
])
def test_roles_give_only_their_listed_actions_with_known_arguments_and_locks(clock, role, action, args, expect):
    reason = Policy(device_config(), clock).refusal(role, action, args)
    assert reason == expect if expect is None else expect in reason


@pytest.mark.parametrize("role, quiet, alarm, visit", [
    ("r-always", True, True, True), ("r-never", False, False, False), ("r-alarm", False, True, False),
    ("r-visit", False, False, True), ("r-either", False, True, True), ("r-unlisted", False, False, False),
])
def test_unlock_rule_decides_per_role(clock, role, quiet, alarm, visit):
    p = rules_policy(clock)
    assert (p.refusal(role, "unlock", {"lock": "door"}) is None) == quiet  # 14:00 local, no alarm
    p.note_alarm()
    assert (p.refusal(role, "unlock", {"lock": "door"}) is None) == alarm
    clock.mono += 120  # the alarm has closed
    clock.wall = datetime(2026, 5, 4, 19, 30, tzinfo=UTC)  # 21:30 in Stockholm (CEST): a visit
    assert (p.refusal(role, "unlock", {"lock": "door"}) is None) == visit
    assert p.refusal(role, "lock", {"lock": "door"}) is None  # locking is never restricted


def test_alarm_stays_open_for_alarm_open_s_on_the_monotonic_clock(clock):
    p = rules_policy(clock)
    assert "only while an alarm" in p.refusal("r-alarm", "unlock", {"lock": "door"})
    p.note_alarm()
    clock.is_synced, clock.wall = False, datetime(2001, 1, 1, tzinfo=UTC)  # wall time is irrelevant
    clock.mono = 1000 + 119.5  # noted at monotonic 1000, open for 120 s
    assert p.alarm_open() and p.refusal("r-alarm", "unlock", {"lock": "door"}) is None
    clock.mono = 1000 + 120.0
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


SAT_NIGHT, MON_EARLY = ("22:00", "06:00", ["sat"]), ("00:30", "01:30", ["mon"])


@pytest.mark.parametrize("window, utc, inside", [
    (SAT_NIGHT, "2026-03-28T20:59", False), (SAT_NIGHT, "2026-03-28T21:00", True),  # Sat 22:00 CET: opens
    (SAT_NIGHT, "2026-03-29T03:59", True), (SAT_NIGHT, "2026-03-29T04:00", False),  # Sun 06:00 CEST: closes
    (SAT_NIGHT, "2026-03-29T20:00", False),  # Sun 22:00: not a visit day
    (SAT_NIGHT, "2026-03-28T00:30", False),  # Sat 01:30 belongs to Friday's night
    (MON_EARLY, "2026-05-03T22:45", True),  # Sunday in UTC, Monday 00:45 in Stockholm
    (MON_EARLY, "2026-05-04T22:45", False),  # Tuesday 00:45 local
])
def test_visit_day_is_the_local_start_day_even_past_midnight_and_dst(clock, window, utc, inside):
    p = rules_policy(clock, visits=[{"start": window[0], "end": window[1], "days": window[2]}])
    clock.wall = datetime.fromisoformat(utc).replace(tzinfo=UTC)
    assert (p.refusal("r-visit", "unlock", {"lock": "door"}) is None) == inside


def _minutes(hhmm: str) -> int:
    return int(hhmm[:2]) * 60 + int(hhmm[3:])


hhmm = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59))


@settings(max_examples=500)
@given(local=st.datetimes(datetime(2026, 1, 1), datetime(2027, 1, 1)), start=hhmm, end=hhmm,
       days=st.lists(st.sampled_from(DAYS), unique=True))
def test_in_window_agrees_with_minutes_of_the_week(local, start, end, days):
    window = VisitWindow(start=start, end=end, days=days)
    t = local.weekday() * 1440 + local.hour * 60 + local.minute
    length = (_minutes(end) - _minutes(start)) % 1440 or 1440  # start == end: 24 hours
    expected = any((t - DAYS.index(d) * 1440 - _minutes(start)) % (7 * 1440) < length for d in days)
    assert in_window(local, window) == expected


# ---------------------------------------------------------------- staff ----------------------

@pytest.fixture
def staff(db, clock):
    return StaffRegistry(db, AuditLog(db, clock), dict(device_config().roles))


def kid_of(identity: Identity) -> bytes:
    return signer_kid(identity.public().sign)


def test_add_list_and_remove_staff_and_removed_keys_stay_known_as_revoked(staff, clock):
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
    found = staff.by_kid(kid_of(anna))  # revoked, but still named in refusals
    assert found.name == "anna" and found.active is False and staff.by_kid(b"\0" * len(kid_of(anna))) is None
    assert staff.signer_lookup(kid_of(anna)).public_bytes_raw() == anna.public().sign.public_bytes_raw()
    with pytest.raises(ConfigError, match="no enrolled staff member named 'anna'"):
        staff.remove("anna")
    with pytest.raises(ConfigError, match="no enrolled staff member"):
        staff.remove("nobody")


@pytest.mark.parametrize("name, role, error", [
    ("anna", "janitor", "--role must be one of night-staff, nurse, technician"),
    ("", "nurse", "staff name must be"), ("a" * 64, "nurse", "staff name must be"),
    ("Anna", "nurse", "staff name must be"), ("-anna", "nurse", "staff name must be"),
    ("anna\n", "nurse", "staff name must be"), ("a" * 63, "nurse", None), ("0berit.s_2-x", "nurse", None),
])
def test_enrollment_needs_a_valid_name_and_a_configured_role(staff, name, role, error):
    key = Identity.generate("x").public()
    if error is None:
        assert staff.add(name, key, role).name == name and len(staff.audit.entries()) == 1
    else:
        with pytest.raises(ConfigError, match=error):
            staff.add(name, key, role)
        assert staff.members() == [] and staff.audit.entries() == []


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


def test_a_revoked_key_handed_to_someone_else_finds_the_active_holder(staff):
    anna = Identity.generate("anna")
    staff.add("anna", anna.public(), "night-staff")
    staff.remove("anna")
    staff.add("berit", anna.public(), "nurse")
    assert staff.by_kid(kid_of(anna)).name == "berit" and staff.by_kid(kid_of(anna)).active


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


def test_an_alarm_stays_open_across_a_restart_only_with_a_synchronized_clock(clock):
    cfg = DeviceConfig.model_validate({"home": {"id": "h"}, "broker": {"host": "x", "ca": "a", "cert": "b", "key": "c"},
                                       "commands": {"alarm_open_s": 600}})
    clock.is_synced = True
    before = Policy(cfg, clock)
    before.note_alarm()
    saved = before.last_alarm_wall
    assert saved == clock.time()
    clock.advance(300)
    clock.mono = 5.0  # a reboot: the monotonic clock starts again
    after = Policy(cfg, clock)
    after.restore_alarm(saved)
    assert after.alarm_open()
    clock.advance(301)
    assert not after.alarm_open()
    clock.is_synced = False
    unsynced = Policy(cfg, clock)
    unsynced.restore_alarm(clock.time() - 10)
    assert not unsynced.alarm_open()
    unsynced.note_alarm()
    assert unsynced.alarm_open() and unsynced.last_alarm_wall is None  # an untrusted time is not kept

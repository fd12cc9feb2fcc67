"""The center names the first bad entry of a home's forwarded audit chain (center/auditchain.py).

The chains are written by the device's own AuditLog on a real trust.db (sealed to a center key
as the daemon seals them, or in the plain form an older version wrote), and each entry is
forwarded as the daemon forwards it: `AuditEntry.to_json()` as the body of an `audit` event,
through the wire encoding. Opened bodies come from the center's real Opener.
"""

import base64
import random
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.audit import AuditLog
from agent.trustdb import AtRest, TrustDB
from base.keys import Identity
from center.auditchain import check, render
from center.opening import Opener
from protocol.ids import new_id
from protocol.messages import EventMessage, decode, encode
from tests.support.fakes import FakeClock

HOME = "hem-kedja"
T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
DEVICE, CENTER = Identity.generate("device"), Identity.generate("center")
DETAILS = [  # one of each shape the device writes: readable parts, sealed names and reasons
    ("start", {"config_sha256": "ab" * 32, "center_key": "k1"}),
    ("staff_added", {"name": "birgitta", "role": "nurse", "kid": "s1", "replaced": False}),
    ("command", {"outcome": "done", "action": "unlock", "command": "c1", "bytes": 310, "staff": "birgitta",
                 "role": "nurse", "reason": None}),
    ("command", {"outcome": "refused", "action": "unlock", "command": "c2", "bytes": 300, "staff": "annika",
                 "role": "night-staff", "reason": "not allowed: night-staff may not unlock now"}),
    ("config_changed", {"changed": ["locks.altandorren", "broker"], "config_sha256": "cd" * 32}),
    ("dispenser_refilled", {"doses_left": 28, "days_left": 14, "dispenser": "kitchen"}),
    ("stop", {"uptime_s": 3600.5}),
]


def write_chain(path, count: int, sealed: bool = True, synced: bool = True) -> list:
    """`count` entries appended by the device's AuditLog; their forwarded bodies."""
    clock = FakeClock(T0, synced=synced)
    db = TrustDB(path, AtRest(HOME, DEVICE, lambda: CENTER.kem.public) if sealed else None)
    try:
        log = AuditLog(db, clock)
        for n in range(count):
            clock.advance(7.25)
            kind, detail = DETAILS[n % len(DETAILS)]
            log.append(kind, detail)
        return [forwarded(e) for e in log.entries()]
    finally:
        db.close()


def event_of(entry) -> EventMessage:
    """The `audit` event the daemon sends for an entry, as the center decodes it."""
    message = EventMessage(id=new_id(), home=HOME, cls="event", kind="audit", time=T0, clock_synced=True,
                           body=entry.to_json())
    return decode(encode(message), EventMessage)


def forwarded(entry) -> dict:
    return event_of(entry).body


def opened(body: dict) -> dict:
    """The body as the center's opener shows it: the sealed detail opened, the sealed bytes gone."""
    message = EventMessage(id=new_id(), home=HOME, cls="event", kind="audit", time=T0, clock_synced=True, body=body)
    return Opener(None, [CENTER.kem], None, None)._open_audit(message).body


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> list[dict]:
    return write_chain(tmp_path_factory.mktemp("sealed") / "trust.db", 12)


def edited(body: dict, field: str) -> dict:
    out = dict(body)
    if field == "detail":
        out["detail"] = {**body["detail"], "outcome": "edited"}
    elif field == "kind":
        out["kind"] = "staff_removed" if body["kind"] != "staff_removed" else "start"
    elif field == "time":
        out["time"] = body["time"] + 1.0
    elif field == "synced":
        out["synced"] = not body["synced"]
    elif field == "sealed":
        raw = bytearray(base64.b64decode(body["sealed"]))
        raw[len(raw) // 2] ^= 1
        out["sealed"] = base64.b64encode(bytes(raw)).decode()
    elif field in ("hash", "prev"):
        out[field] = ("f" if body[field][0] != "f" else "e") + body[field][1:]
    return out


# -- a whole chain, and what is not a fault ----------------------------------------------------
def test_a_whole_chain_forwarded_in_any_order_is_intact(chain):
    shuffled = random.Random(7).sample(chain, len(chain))
    report = check(shuffled)
    assert report.ok and report.first_bad is None and report.problem is None
    assert (report.entries, report.first_seq, report.last_seq, report.hashes_checked) == (12, 1, 12, 12)
    assert report.to_json()["from_start"] is True and report.to_json()["ok"] is True


def test_the_same_entry_received_twice_is_no_fault(chain):
    report = check(chain + chain[3:6] + [dict(chain[0])])
    assert report.ok and report.entries == 12


def test_a_chain_the_center_holds_from_the_middle_is_intact_from_that_entry(chain):
    report = check(chain[4:])
    assert report.ok and report.first_seq == 5 and report.to_json()["from_start"] is False
    assert "from entry 5" in render(report)


def test_a_plain_chain_an_older_device_forwarded_is_checked_in_full(tmp_path):
    bodies = write_chain(tmp_path / "trust.db", 9, sealed=False)
    assert all(b["sealed"] is None for b in bodies)
    report = check(bodies)
    assert report.ok and report.hashes_checked == 9
    bodies[4] = edited(bodies[4], "detail")
    assert check(bodies).first_bad == 5


def test_opened_bodies_are_linked_but_their_hashes_cannot_be_recomputed(chain):
    report = check([opened(b) for b in chain])
    assert report.ok and report.hashes_checked == 0
    swapped = [opened(b) for b in chain]
    swapped[5]["seq"], swapped[6]["seq"] = 7, 6
    assert check(swapped).first_bad == 6


def test_an_entry_opened_once_and_forwarded_once_is_the_same_entry(chain):
    assert check(chain + [opened(b) for b in chain[2:5]]).ok


def test_an_entry_sent_without_its_detail_for_size_still_links(chain):
    bodies = list(chain)
    bodies[3] = {**bodies[3], "detail": {"truncated": True}, "sealed": None}  # as forward_audit sends it
    report = check(bodies)
    assert report.ok and report.hashes_checked == 11


# -- each fault, named at its entry ------------------------------------------------------------
def test_a_missing_entry_is_named(chain):
    report = check(chain[:5] + chain[6:])
    assert not report.ok and report.first_bad == 6
    assert report.problem == "entry 6 is missing: the center holds entry 5 and then entry 7"


def test_several_missing_entries_are_named_from_the_first(chain):
    report = check(chain[:3] + chain[7:])
    assert report.first_bad == 4 and "entries 4..7 are missing" in report.problem


def test_swapped_entries_break_the_chain_at_the_first_of_them(chain):
    bodies = [dict(b) for b in chain]
    bodies[7]["seq"], bodies[8]["seq"] = 9, 8
    report = check(bodies)
    assert not report.ok and report.first_bad == 8 and "does not follow entry 7" in report.problem


@pytest.mark.parametrize("field", ["detail", "kind", "time", "synced", "sealed", "hash"])
def test_an_edited_entry_is_named(chain, field):
    bodies = list(chain)
    bodies[9] = edited(bodies[9], field)
    report = check(bodies)
    assert not report.ok and report.first_bad == 10
    assert report.problem.startswith("entry 10 (") and "was altered" in report.problem


def test_an_entry_replaced_with_a_rehashed_one_breaks_the_link_after_it(chain):
    from protocol.auditchain import canonical, entry_hash
    bodies = list(chain)
    forged = edited(bodies[4], "detail")
    forged["hash"] = entry_hash(forged["prev"], 5, forged["time"], forged["synced"], forged["kind"],
                                canonical(forged["detail"]), base64.b64decode(forged["sealed"]))
    bodies[4] = forged
    report = check(bodies)
    assert report.first_bad == 6 and "does not follow entry 5" in report.problem


def test_a_duplicate_with_different_contents_is_tampering(chain):
    report = check(chain + [edited(chain[2], "detail")])
    assert not report.ok and report.first_bad == 3
    assert "received twice with different contents" in report.problem


def test_a_first_entry_that_does_not_start_from_genesis_is_named(chain):
    assert check([edited(chain[0], "prev")] + chain[1:]).first_bad == 1


def test_a_malformed_entry_is_named(chain):
    bodies = list(chain)
    bodies[2] = {**bodies[2], "synced": 1}
    report = check(bodies)
    assert report.first_bad == 3 and "synced" in report.problem


def test_a_cut_off_tail_is_not_detectable_so_the_last_entry_is_given_to_compare(chain):
    report = check(chain[:9])
    assert report.ok and report.last_seq == 9
    lines = render(report).splitlines()
    assert len(lines) == 2 and lines[1].startswith("last entry 9 at 2026-11-25 02:01:05 UTC")
    assert "trygg audit verify" in lines[1]


def test_render_names_the_broken_entry_first(chain):
    text = render(check(chain[:5] + chain[6:]))
    assert text.splitlines()[0].startswith("audit chain BROKEN at entry 6: entry 6 is missing")
    assert render(check([])) == "no audit entries from this home yet"


# -- the device re-sealing what an older version wrote in plain ----------------------------------
def resealed(path, plain: int, after: int, synced: bool = True) -> tuple[list, list]:
    """A trail written in plain, then opened with the keys (re-hashed, audit_sealed appended),
    then `after` more entries: the bodies before and after the re-sealing."""
    before = write_chain(path, plain, sealed=False, synced=synced)
    clock = FakeClock(T0, synced=True)
    clock.advance(1000)
    db = TrustDB(path, AtRest(HOME, DEVICE, lambda: CENTER.kem.public))
    try:
        log = AuditLog(db, clock)
        for _ in range(after):
            clock.advance(3)
            log.append("stop", {"uptime_s": 1.0})
        return before, [forwarded(e) for e in log.entries()]
    finally:
        db.close()


def test_resealing_after_every_plain_entry_was_forwarded_is_accepted(tmp_path):
    before, now = resealed(tmp_path / "trust.db", 5, 2)
    assert now[5]["kind"] == "audit_sealed"
    report = check(before + now[5:])
    assert report.ok and report.last_seq == 8 and "re-sealed" in report.notes[0]


@pytest.mark.parametrize("form", ["opened", "as forwarded"])
def test_resealing_entries_not_yet_forwarded_is_accepted(tmp_path, form):
    before, now = resealed(tmp_path / "trust.db", 5, 1)
    later = [opened(b) for b in now[3:]] if form == "opened" else now[3:]
    report = check(before[:3] + later)
    assert report.ok and report.last_seq == 7
    assert ("matches" in report.notes[0]) == (form == "opened")


def test_a_resealing_that_names_another_old_head_is_named(tmp_path):
    mine, _ = resealed(tmp_path / "a.db", 5, 0)
    _, theirs = resealed(tmp_path / "b.db", 5, 1, synced=False)  # another trail: other flags, other hashes
    report = check(mine + theirs[5:])
    assert not report.ok and report.first_bad == 6 and "re-sealed" in report.problem
    report = check(mine[:3] + [opened(b) for b in theirs[3:]])
    assert not report.ok and report.first_bad == 4


# -- the property: one deletion or one edit anywhere is named at its entry ------------------------
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_single_deletion_or_edit_is_named_at_its_entry(chain, data):
    start = data.draw(st.integers(1, 4), "first entry held")
    end = data.draw(st.integers(start + 2, 12), "last entry held")
    bodies = [dict(b) for b in chain[start - 1:end]]
    if data.draw(st.booleans(), "delete"):
        k = data.draw(st.integers(start + 1, end - 1), "deleted")  # the ends cannot be told from a shorter chain
        bodies = [b for b in bodies if b["seq"] != k]
    else:
        k = data.draw(st.integers(start, end), "edited")
        field = data.draw(st.sampled_from(["detail", "kind", "time", "synced", "sealed", "hash", "prev"]), "field")
        bodies = [edited(b, field) if b["seq"] == k else b for b in bodies]
    copies = data.draw(st.lists(st.sampled_from(bodies), max_size=3), "identical copies")
    received = data.draw(st.permutations(bodies + copies), "order received")
    report = check(received)
    assert not report.ok and report.first_bad == k, report
    assert f"entry {k}" in report.problem

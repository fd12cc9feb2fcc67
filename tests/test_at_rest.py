"""What a stolen SD card (or the center's disk) tells: trust.db, outbox.db and center.db at rest.

In-process, on real SQLite files: a night of commands (an unlock, refusals, a look-in that
cannot be given), dispenser doses and motion, then the raw bytes of trust.db and its -wal are
searched for names, lock names and dose times. The audit's sealed details are verified on the
device and opened with the center's key. Through the real CLI: a 0644 key or database stops
the daemon and the receiver with the chmod to run, and the files they create are 0600.
"""

import base64
import json
import os
import sqlite3
import stat
from datetime import datetime, timedelta, timezone

import pytest

from agent.actions import build_actions
from agent.audit import AuditLog
from base.auditdetail import open_detail
from agent.commands import Commands
from agent.config import DeviceConfig
from agent.devices import DriverState
from base.errors import KeyFileError
from agent.freshness import Freshness
from base.keys import Identity
from agent.policy import Policy
from protocol import envelope, topics
from protocol.ids import new_id
from protocol.messages import CommandMessage, encode
from agent.staff import StaffRegistry
from agent.trustdb import AtRest, TrustDB
from center.store import EventStore
from tests.support.fakes import FakeClock, RecordingLock
from tests.support.homekit import Home, local
from tests.support.lab import trygg, wait_for

HOME = "hem-vila"
LOCK = "altandorren"  # a lock name that appears nowhere but in the config
STAFF = {"birgitta": "nurse", "annika": "night-staff", "torsten": "technician"}
T0 = datetime(2026, 11, 25, 2, 0, tzinfo=timezone.utc)


def raw(path) -> bytes:
    """Every byte SQLite keeps for this database: the file, its WAL and shared memory."""
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*") if p.is_file())


def keys():
    return Identity.generate("device"), Identity.generate("center")


class Night:
    """One home's trust.db wired as the daemon wires it: AtRest, audit, staff, commands."""

    def __init__(self, root, at_rest: bool = True) -> None:
        self.device, self.center = keys()
        self.clock = FakeClock(T0)
        self.cfg = DeviceConfig.model_validate({
            "home": {"id": HOME},
            "broker": {"host": "127.0.0.1", "ca": "ca.crt", "cert": "c.crt", "key": "c.key"},
            "locks": {LOCK: {"relay": {"pin": 17}, "bolt": {"pin": 27}, "door": {"pin": 22}}},
        })
        self.path = root / "trust.db"
        self.db = TrustDB(self.path, AtRest(HOME, self.device, lambda: self.center.kem.public) if at_rest else None)
        self.audit = AuditLog(self.db, self.clock)
        self.staff = StaffRegistry(self.db, self.audit, self.cfg.roles)
        self.staff_keys = {name: Identity.generate(name) for name in STAFF}
        for name, role in STAFF.items():
            self.staff.add(name, self.staff_keys[name].public(), role)
        self.lock = RecordingLock()
        actions = build_actions({LOCK: self.lock}, status=lambda: {"home": HOME}, switch_center_key=lambda kid: kid)
        self.reports: list = []
        self.commands = Commands(HOME, self.device, self.staff, Freshness(self.db, self.clock, self.cfg.commands),
                                 Policy(self.cfg, self.clock), self.audit, actions, self.reports.append,
                                 self.cfg.commands, self.clock)

    def send(self, signer: str, action: str, args: dict | None = None):
        now = self.clock.now()
        cmd = CommandMessage(id=new_id(int(now.timestamp() * 1000)), home=HOME, action=action,
                             args=args if args is not None else {"lock": LOCK}, issued=now,
                             expires=now + timedelta(seconds=60))
        topic = topics.command(HOME)
        verdict = self.commands.handle(topic, envelope.seal(encode(cmd), topic, self.staff_keys[signer].sign,
                                                            self.device.kem.public))
        self.clock.advance(5)
        return verdict


@pytest.fixture
def night(tmp_path):
    n = Night(tmp_path)
    yield n
    n.db.close()


def a_night(n: Night, tmp_path) -> None:
    """An unlock, refused unlocks, a look-in this home cannot give, a config remembered, doses."""
    assert n.send("birgitta", "unlock").outcome == "done"
    assert n.send("annika", "unlock").outcome == "refused"  # night staff: only while an alarm is open
    assert n.send("annika", "lookin", {}).outcome in ("refused", "failed")
    assert n.send("torsten", "unlock").outcome == "refused"
    n.staff.remove("torsten")
    with n.db.write() as conn:
        n.db.remember_config(conn, n.cfg.model_dump(mode="json"))
    home = Home(tmp_path, start=local("07:59:30", day=25), trust=n.db,
                overrides={"dispensers": {"kitchen": {"doses": [{"time": "08:17"}, {"time": "13:43"}]}}})
    home.open("kitchen")
    home.open("hall")
    home.run_until(local("08:20", day=25))
    words = home.driver("kitchen").INPUTS["taken"]
    home.set("kitchen", "taken", words[0])  # the 08:17 dose is taken
    home.set("hall", "motion", home.driver("hall").INPUTS["motion"][0])
    home.run_until(local("15:00", day=25))  # the 13:43 dose is missed
    assert {"dose_taken", "dose_missed"} <= set(home.events.kinds())
    for driver in home.opened:
        driver.close()


def test_a_night_leaves_no_names_lock_names_or_dose_times_in_trust_db(night, tmp_path):
    a_night(night, tmp_path)
    night.db.close()
    on_disk = raw(night.path)
    assert on_disk, "trust.db and its WAL hold the night"
    for secret in [*STAFF, LOCK, "08:17", "13:43", "only while an alarm", "may not give", "per_hour", "counts"]:
        assert secret.encode() not in on_disk, f"{secret!r} is readable in trust.db"
    # and yet the device still works with what it kept: names for the technician, counts for the summary
    db = TrustDB(night.path, AtRest(HOME, night.device, lambda: night.center.kem.public))
    try:
        audit = AuditLog(db, night.clock)
        members = {m.name: m.active for m in StaffRegistry(db, audit, night.cfg.roles).members()}
        assert members == {"birgitta": True, "annika": True, "torsten": False}
        state = DriverState(db, "dispenser:kitchen").load()
        assert state["counts"] == {"taken": 1, "missed": 1} and state["left"] == 26
        assert audit.verify().ok
        commands = [e for e in audit.entries() if e.kind == "command"]
        assert [e.detail["outcome"] for e in commands[:2]] == ["done", "refused"]
        assert commands[1].detail["reason_kind"] == "not allowed" and "staff" not in commands[1].detail
    finally:
        db.close()


def test_the_same_night_without_sealing_would_name_everyone(tmp_path):
    """The search above can fail: the plain form (older versions) holds every name."""
    n = Night(tmp_path, at_rest=False)
    try:
        a_night(n, tmp_path)
    finally:
        n.db.close()
    on_disk = raw(n.path)
    assert b"birgitta" in on_disk and LOCK.encode() in on_disk


def test_verify_names_the_entry_whose_sealed_detail_was_altered(night):
    night.send("birgitta", "unlock")
    night.send("annika", "unlock")
    entries = night.audit.entries()
    target = next(e for e in entries if e.kind == "command")
    assert target.sealed is not None and night.audit.verify().ok
    conn = sqlite3.connect(night.path)
    blob = bytearray(conn.execute("SELECT sealed FROM audit WHERE seq = ?", (target.seq,)).fetchone()[0])
    blob[-1] ^= 1
    conn.execute("UPDATE audit SET sealed = ? WHERE seq = ?", (bytes(blob), target.seq))
    conn.commit()
    verdict = night.audit.verify()
    assert not verdict.ok and verdict.bad_seq == target.seq and "altered" in verdict.reason
    conn.execute("UPDATE audit SET sealed = NULL WHERE seq = ?", (target.seq,))  # "make it an old plain row"
    conn.commit()
    conn.close()
    assert night.audit.verify().bad_seq == target.seq


def test_the_center_opens_each_forwarded_audit_detail_and_no_other(night):
    night.send("birgitta", "unlock")
    forwarded = [json.loads(json.dumps(e.to_json())) for e in night.audit.entries()]  # as the `audit` event body
    staff_added = next(b for b in forwarded if b["kind"] == "staff_added")
    assert open_detail(staff_added, HOME, [night.center.kem])["name"] == "birgitta"
    unlock = [b for b in forwarded if b["kind"] == "command"][-1]
    detail = open_detail(unlock, HOME, [night.center.kem])
    assert detail["staff"] == "birgitta" and detail["outcome"] == "done" and detail["action"] == "unlock"
    with pytest.raises(KeyFileError):
        open_detail(unlock, "hem-other", [night.center.kem])  # bound to its home
    with pytest.raises(KeyFileError):
        open_detail({**unlock, "seq": staff_added["seq"]}, HOME, [night.center.kem])  # and to its entry
    with pytest.raises(KeyFileError):
        open_detail(unlock, HOME, [night.device.kem])  # the device cannot read its own audit trail


def test_an_older_trust_db_is_sealed_on_first_open_and_still_verifies(tmp_path):
    old = Night(tmp_path, at_rest=False)
    old.send("birgitta", "unlock")
    device, center = old.device, old.center
    head = old.audit.entries()[-1]
    old.db.close()
    conn = sqlite3.connect(old.path)  # exactly the schema of the version before
    conn.execute("ALTER TABLE audit DROP COLUMN sealed")
    conn.execute("ALTER TABLE staff DROP COLUMN name_box")
    conn.commit()
    conn.close()
    assert b"birgitta" in raw(old.path)

    db = TrustDB(old.path, AtRest(HOME, device, lambda: center.kem.public))
    try:
        audit = AuditLog(db, old.clock)
        staff = StaffRegistry(db, audit, old.cfg.roles)
        assert audit.verify().ok
        entries = audit.entries()
        assert all(e.sealed is not None for e in entries)
        assert entries[-1].kind == "audit_sealed" and entries[-1].detail == {
            "entries": head.seq, "old_head": f"{head.seq}:{head.hash}"}
        assert {m.name for m in staff.members()} == set(STAFF)
        staff.remove("annika")  # found by name after sealing
        assert open_detail(entries[0].to_json(), HOME, [center.kem])["name"] in STAFF
    finally:
        db.close()
    on_disk = raw(old.path)
    for secret in [*STAFF, LOCK]:
        assert secret.encode() not in on_disk, f"{secret!r} still readable after sealing"


def test_an_older_trail_that_does_not_verify_is_left_for_verify_to_name(tmp_path):
    old = Night(tmp_path, at_rest=False)
    old.db.close()
    conn = sqlite3.connect(old.path)
    conn.execute("UPDATE audit SET detail = replace(detail, 'annika', 'anna') WHERE seq = 2")
    conn.commit()
    conn.close()
    db = TrustDB(old.path, AtRest(HOME, old.device, lambda: old.center.kem.public))
    try:
        verdict = AuditLog(db, old.clock).verify()
        assert not verdict.ok and verdict.bad_seq == 2
    finally:
        db.close()


def test_driver_state_keeps_readable_only_what_the_driver_names(night):
    state = DriverState(night.db, "motion:hall", ("day",))
    state.save({"day": "2026-11-25", "per_hour": [0] * 9 + [4] + [0] * 14})
    stored = json.loads(night.db.setting("driver:motion:hall"))
    assert set(stored) == {"day", "sealed"} and base64.b64decode(stored["sealed"])
    assert state.load()["per_hour"][9] == 4
    with night.db.write() as conn:  # as an older version wrote it: read as it is
        TrustDB.put_setting(conn, "driver:motion:hall", json.dumps({"day": "2026-11-24", "per_hour": [1] * 24}))
    assert state.load() == {"day": "2026-11-24", "per_hour": [1] * 24}


# -- file modes ---------------------------------------------------------------------------------
def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_database_others_can_read_is_refused_with_the_chmod_to_run(tmp_path):
    for make in (TrustDB, EventStore):
        path = tmp_path / f"{make.__name__}.db"
        make(path).close()
        assert mode(path) == 0o600
        os.chmod(path, 0o644)
        with pytest.raises(KeyFileError) as refused:
            make(path)
        assert str(path) in str(refused.value) and "644" in str(refused.value) and f"chmod 600 {path}" in str(refused.value)
        os.chmod(path, 0o600)
        wal = path.with_name(path.name + "-wal")
        wal.touch()
        os.chmod(wal, 0o604)
        with pytest.raises(KeyFileError, match="-wal"):
            make(path)


def test_daemon_and_receiver_refuse_to_start_on_a_0644_file_and_create_theirs_0600(lab):
    home = lab.home("hem-modes")
    lab.enroll(home, "birgitta", "nurse")
    watch = lab.watch()
    home.start()
    home.simulate("event", kind="test")
    wait_for(lambda: home.depth() == 0, 20, "the event to be acknowledged")
    home.stop()
    watch.stop()
    center_dir = lab.center_config.parent
    created = [*home.dir.glob("trust.db*"), *home.dir.glob("outbox.db*"), *center_dir.glob("*.db*")]
    assert {p.name for p in created} >= {"trust.db", "outbox.db", "center.db"}
    assert {p.name: mode(p) for p in created} == {p.name: 0o600 for p in created}

    for victim in (home.dir / "outbox.db", home.dir / "trust.db", home.dir / "device.key"):
        os.chmod(victim, 0o644)
        proc = trygg("run", "--config", home.config, check=False, timeout=30)
        os.chmod(victim, 0o600)
        assert proc.returncode != 0 and str(victim) in proc.stderr and "644" in proc.stderr, proc.stderr
        assert f"chmod 600 {victim}" in proc.stderr
    os.chmod(center_dir / "center.db", 0o644)
    proc = trygg("center", "watch", "--config", lab.center_config, check=False, timeout=30)
    assert proc.returncode != 0 and f"chmod 600 {center_dir / 'center.db'}" in proc.stderr, proc.stderr


def test_through_the_daemon_trust_db_names_nobody_and_the_center_reads_the_audit(lab):
    home = lab.home("hem-rest")
    lab.enroll(home, "birgitta", "nurse")
    lab.enroll(home, "annika", "night-staff")
    watch = lab.watch()
    home.start()
    ok = trygg("center", "unlock", home.id, "--as", "birgitta", "--json", "--config", lab.center_config)
    assert json.loads(ok.stdout)["staff"] == "birgitta"
    refused = trygg("center", "unlock", home.id, "--as", "annika", "--json", "--config", lab.center_config, check=False)
    assert refused.returncode == 4
    shown = watch.wait_event(lambda o: o.get("kind") == "audit" and o["body"]["kind"] == "command"
                             and o["body"]["detail"].get("staff") == "annika", timeout=45)
    assert "front-door" in shown["body"]["detail"]["reason"] and "sealed" not in shown["body"]
    on_device = [e for e in home.audit() if e["kind"] == "command"]
    assert on_device[-1]["detail"]["outcome"] == "refused" and "staff" not in on_device[-1]["detail"]
    listed = trygg("staff", "list", "--json", "--config", home.config).stdout.splitlines()
    assert {json.loads(line)["name"] for line in listed} == {"birgitta", "annika"}
    home.stop()
    on_disk = raw(home.dir / "trust.db")
    for secret in (b"birgitta", b"annika", b"front-door", b"only while an alarm"):
        assert secret not in on_disk, f"{secret!r} is readable in the daemon's trust.db"
    assert trygg("audit", "verify", "--config", home.config).stdout.startswith("audit trail intact")


def audit_at_center(lab, home) -> list[dict]:
    """A home's audit trail as the center reads it: each entry's sealed detail opened with the
    center's key (for the end-to-end tests that check who did what; the device itself cannot)."""
    from base.keys import load_private

    center = load_private(lab.center_config.parent / "center.key").kem
    with TrustDB(home.dir / "trust.db") as db:
        entries = [e.to_json() for e in AuditLog(db, None).entries()]
    return [{**e, "detail": open_detail(e, home.id, [center])} for e in entries]

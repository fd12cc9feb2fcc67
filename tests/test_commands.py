"""Signed commands end to end: staff keys, enrollment, unlock through the real broker, audit.

Everything goes through the CLI as installers and night staff use it: `trygg center
staff-key`, `trygg staff add`, `trygg center unlock|lock|ping|status`, `trygg audit`.
"""

import json
import sqlite3

import pytest

from tests.support.lab import Lab, RawCenter, trygg, wait_for
from tests.test_at_rest import audit_at_center

EXIT_REFUSED, EXIT_NO_ANSWER = 4, 6


def command(lab: Lab, action: str, home, staff: str, *extra, timeout: float = 10) -> tuple[int, dict | None, str]:
    proc = trygg("center", action, home.id, "--as", staff, "--json", "--timeout", timeout, *extra,
                 "--config", lab.center_config, check=False)
    result = json.loads(proc.stdout) if proc.stdout.strip() else None
    return proc.returncode, result, proc.stderr


@pytest.fixture
def staffed(lab):
    home = lab.home("hem-cmd").start()
    lab.enroll(home, "berit", "nurse")
    lab.enroll(home, "anna", "night-staff")
    lab.enroll(home, "tove", "technician")
    return lab, home


def test_nurse_unlock_is_confirmed_by_the_device_and_audited(staffed):
    lab, home = staffed
    watch = lab.watch()
    code, result, err = command(lab, "unlock", home, "berit")
    assert code == 0, err
    assert result["outcome"] == "done" and result["lock"] == "front-door" and result["state"] == "unlocked"
    assert result["staff"] == "berit" and result["role"] == "nurse"
    assert home.status()["locks"]["front-door"] == "unlocked"
    entry = [e for e in home.audit() if e["kind"] == "command"][-1]
    assert entry["detail"]["outcome"] == "done" and entry["detail"]["command"] == result["command"]
    # the signed result is an ordinary event too: the night-staff console shows it
    watch.wait_event(lambda o: o.get("kind") == "command_result" and o["body"]["command"] == result["command"])
    code, result, err = command(lab, "lock", home, "berit")
    assert code == 0 and result["state"] == "locked", err


def test_night_staff_may_unlock_only_while_an_alarm_is_open(staffed):
    lab, home = staffed
    code, result, err = command(lab, "unlock", home, "anna")
    assert code == EXIT_REFUSED, err
    assert result["outcome"] == "refused" and "only while an alarm is open" in result["reason"]
    assert home.status()["locks"]["front-door"] == "locked"
    home.simulate("alarm", kind="fall")  # a simulated alarm opens nothing; a real one: tests/test_simulated_alarms.py
    code, result, err = command(lab, "unlock", home, "anna")
    assert code == EXIT_REFUSED and "only while an alarm is open" in result["reason"], (err, result)


def test_role_without_the_action_is_refused_and_says_so(staffed):
    lab, home = staffed
    code, result, _ = command(lab, "unlock", home, "tove")
    assert code == EXIT_REFUSED and "role technician may not give the command 'unlock'" in result["reason"]
    code, result, _ = command(lab, "ping", home, "tove")
    assert code == 0 and result["pong"] is True


def test_status_command_reports_the_device_state(staffed):
    lab, home = staffed
    code, result, err = command(lab, "status", home, "anna")
    assert code == 0, err
    status = result["status"]
    assert status["home"] == home.id and status["link"] == "connected" and status["locks"] == {"front-door": "locked"}


def test_unknown_lock_is_refused(staffed):
    lab, home = staffed
    code, result, _ = command(lab, "unlock", home, "berit", "--lock", "back-door")
    assert code == EXIT_REFUSED and "no lock named 'back-door'" in result["reason"]


def test_revoked_staff_member_is_refused_at_once(staffed):
    lab, home = staffed
    trygg("staff", "remove", "berit", "--config", home.config)
    code, result, _ = command(lab, "unlock", home, "berit")
    assert code == EXIT_REFUSED and "berit is revoked" in result["reason"]
    listed = trygg("staff", "list", "--all", "--json", "--config", home.config).stdout.splitlines()
    assert {json.loads(line)["name"]: json.loads(line)["active"] for line in listed} == {
        "anna": True, "berit": False, "tove": True}


def test_unenrolled_staff_gets_no_answer_and_the_attempt_is_audited(staffed):
    lab, home = staffed
    trygg("center", "staff-key", "mallory", "--config", lab.center_config)
    code, result, err = command(lab, "unlock", home, "mallory", timeout=3)
    assert code == EXIT_NO_ANSWER and result is None and "no answer" in err
    refused = [e for e in home.audit() if e["kind"] == "command" and e["detail"]["outcome"] == "refused"]
    assert refused and refused[-1]["detail"]["reason_kind"] == "envelope"  # the words are sealed to the center
    at_center = [e for e in audit_at_center(lab, home) if e["kind"] == "command"]
    assert "signed by an unknown key" in at_center[-1]["detail"]["reason"]
    assert home.status()["locks"]["front-door"] == "locked"


def test_offline_home_is_reported_without_waiting(staffed):
    lab, home = staffed
    home.stop()
    code, _, err = command(lab, "ping", home, "berit")
    assert code == EXIT_NO_ANSWER and "offline" in err


def test_enrollment_changes_starts_and_stops_are_audited_and_reach_the_center(staffed):
    lab, home = staffed
    watch = lab.watch()
    kinds = [e["kind"] for e in home.audit()]
    assert kinds[0] == "start" and kinds.count("staff_added") == 3
    # The watch starts after the enrollments: if the home forwarded them before it subscribed,
    # they come with the home's re-send (resend_after_s, 30 s), not at once.
    watch.wait_event(lambda o: o.get("kind") == "audit" and o["body"]["kind"] == "staff_added"
                     and o["body"]["detail"]["name"] == "tove", timeout=45)
    home.stop()
    home.start()
    kinds = [e["kind"] for e in home.audit()]
    assert kinds[-2:] == ["stop", "start"]
    assert trygg("audit", "verify", "--config", home.config).stdout.startswith("audit trail intact")


def test_config_change_is_audited_at_the_next_start(staffed):
    lab, home = staffed
    home.stop()
    from tests.support.lab import edit_toml

    edit_toml(home.config, {"commands": {"clock_skew_s": 10.0}})
    home.start()
    changed = [e for e in home.audit() if e["kind"] == "config_changed"]
    assert changed and changed[-1]["detail"]["changed"] == ["commands.clock_skew_s"]


def test_altered_audit_entry_is_named_by_verify(staffed):
    lab, home = staffed
    command(lab, "ping", home, "berit")
    home.stop()
    db = sqlite3.connect(home.dir / "trust.db")
    seq = db.execute("SELECT seq FROM audit WHERE kind = 'command'").fetchone()[0]
    # who gave the command is sealed to the center: change a byte of that sealed detail
    db.execute("UPDATE audit SET sealed = CAST(x'00' || substr(sealed, 2) AS BLOB) WHERE seq = ?", (seq,))
    db.commit()
    db.close()
    proc = trygg("audit", "verify", "--config", home.config, check=False)
    assert proc.returncode == 2 and f"entry {seq} was altered" in proc.stderr


def test_audit_show_since_filters_by_time(staffed):
    lab, home = staffed
    assert home.audit()
    shown = trygg("audit", "show", "--since", "2099-01-01T00:00", "--config", home.config).stdout
    assert shown == ""
    bad = trygg("audit", "show", "--since", "yesterday", "--config", home.config, check=False)
    assert bad.returncode == 1 and "--since" in bad.stderr


@pytest.mark.parametrize("kem", ["x25519", "mlkem768-x25519"])
def test_unlock_works_with_either_kem(tmp_path, pki, broker, kem):
    lab = Lab(tmp_path, pki, broker.port, kem=kem)
    try:
        home = lab.home(f"hem-{kem[:6]}").start()
        lab.enroll(home, "berit", "nurse")
        assert json.loads(trygg("config", "show", "--config", home.config).stdout)["home"]["id"] == home.id
        code, result, err = command(lab, "unlock", home, "berit")
        assert code == 0 and result["state"] == "unlocked", err
    finally:
        lab.close()


def test_center_key_rotation_keeps_every_event_readable(staffed):
    lab, home = staffed
    watch = lab.watch()
    before = home.simulate("event", kind="door_open")
    watch.wait_ids(before)
    next_pub = trygg("center", "new-key", "--config", lab.center_config).stdout.strip()
    trygg("center-key", "stage", next_pub, "--config", home.config)
    watch.stop()  # events sealed to the old key wait in the home's outbox through the switch
    pending = home.simulate("event", kind="door_open", count=3)
    old_kid = home.status()["center_key"]
    code, result, err = command(lab, "switch-key", home, "tove")
    assert code == 0 and result["outcome"] == "done", err
    assert home.status()["center_key"] == result["center_key"] != old_kid
    after = home.simulate("alarm", kind="fall")
    trygg("center", "promote-key", "--config", lab.center_config)
    watch = lab.watch()  # opens with the promoted key and the retired one
    watch.wait_ids(pending + after)
    assert any(e["kind"] == "center_key_switched" for e in home.audit())
    home.stop()
    home.start()  # the switch survives a restart
    assert home.status()["center_key"] == result["center_key"]
    again = home.simulate("alarm", kind="help")
    watch.wait_ids(again)


def test_retained_garbage_on_the_command_topic_does_not_stop_the_daemon(lab):
    home = lab.home("hem-retained")
    raw = RawCenter(lab)
    raw.publish("trygg/v1/hem-retained/down/cmd", b"\x01\x01garbage" * 10, retain=True)
    try:
        home.start()
        lab.enroll(home, "berit", "nurse")
        wait_for(lambda: home.status()["commands"]["refused"] >= 1, 10, "the retained message to be judged")
        watch = lab.watch()
        ids = home.simulate("alarm", kind="fall")
        watch.wait_ids(ids)
        code, result, err = command(lab, "unlock", home, "berit")
        assert code == 0 and result["state"] == "unlocked", err
        assert home.proc.poll() is None
    finally:
        raw.publish("trygg/v1/hem-retained/down/cmd", b"", retain=True)  # clear it on the shared broker
        raw.close()

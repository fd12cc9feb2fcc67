"""The receiving side as night staff use it, through the CLI with real processes: the service
(`trygg center run`) receives, the view (`trygg center watch`) comes and goes, cases are taken
and closed with signed actions, the resident is told help is coming, presence is state."""

import json
import os
import signal
import socket
import subprocess
import time

import pytest

from tests.support.lab import ENV, TRYGG, edit_toml, read_notify, stop_process, trygg, wait_for


def center(lab, *args, check: bool = True):
    return trygg("center", *args, "--config", lab.center_config, check=check)


def cases(lab, *args) -> list[dict]:
    return json.loads(center(lab, "cases", "--json", *args).stdout)


@pytest.fixture
def staffed(lab):
    home = lab.home("hem-case", help_coming={"speaker": "speech", "output_file": str(lab.root / "spoken.wav")}).start()
    lab.enroll(home, "berit", "nurse")
    lab.enroll(home, "anna", "night-staff")
    return lab, home


def test_an_alarm_is_a_case_that_named_staff_take_the_resident_is_told_and_the_case_closed(staffed):
    lab, home = staffed
    watch = lab.watch()
    [fall] = home.simulate("alarm", kind="fall")
    opened = watch.wait_case(lambda c: c["change"] == "opened" and c["home"] == home.id)
    assert (opened["state"], opened["kinds"], opened["alarms"]) == ("open", ["fall"], [fall])
    home.simulate("alarm", kind="help")
    joined = watch.wait_case(lambda c: c["change"] == "alarm")
    assert joined["id"] == opened["id"] and joined["kinds"] == ["fall", "help"]

    taken = center(lab, "accept", opened["id"][-8:], "--as", "berit", "--timeout", "10")
    assert "TAGET" in taken.stdout and "berit" in taken.stdout
    case = watch.wait_case(lambda c: c["change"] == "help_coming")
    assert case["help_coming"]["outcome"] == "done", case["help_coming"]
    assert case["help_coming"]["spoken"] is True and (lab.root / "spoken.wav").stat().st_size > 10_000
    assert case["accepted_by"] == "berit" and case["state"] == "accepted"

    # berit's confirmed unlock of that home records her on site by itself
    unlock = center(lab, "unlock", home.id, "--as", "berit", "--timeout", "10")
    assert "DONE" in unlock.stdout
    on_site = watch.wait_case(lambda c: c["change"] == "on_site")
    assert on_site["on_site_by"] == "berit"

    center(lab, "close", opened["id"], "--as", "berit", "--outcome", "helped", "--note", "satt på golvet")
    [closed] = cases(lab)
    assert (closed["state"], closed["outcome"], closed["note"]) == ("closed", "helped", "satt på golvet")
    assert all(closed["response_s"][k] is not None for k in ("to_accept", "to_on_site", "to_close"))
    detail = json.loads(center(lab, "case", closed["id"], "--json").stdout)
    assert [h["action"] for h in detail["history"]] == ["opened", "alarm", "accept", "help_coming", "on_site", "close"]
    assert cases(lab, "--open") == []
    assert "chain intact" in center(lab, "audit", "cases").stdout


@pytest.mark.parametrize("args, message", [
    (["accept", "0123456789ab", "--as", "berit"], "no case '0123456789ab'"),
    (["accept", "CASE", "--as", "nobody-here"], "no key for staff member 'nobody-here'"),
    (["close", "CASE", "--as", "berit", "--outcome", "fine"], "outcome must be one of helped, injured"),
    (["forward", "CASE", "--as", "berit", "--to", "dora"], "'dora' is not an enrolled staff member"),
    (["cases", "--since", "yesterday"], "--since must be like 30m, 2h, 7d"),
])
def test_bad_case_input_is_one_clear_line_and_changes_nothing(staffed, args, message):
    lab, home = staffed
    watch = lab.watch()
    home.simulate("alarm", kind="fall")
    case_id = watch.wait_case(lambda c: c["change"] == "opened")["id"]
    before = cases(lab)
    proc = center(lab, *[case_id if a == "CASE" else a for a in args], check=False)
    assert proc.returncode == 1 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert cases(lab) == before


def test_a_view_started_later_shows_what_is_true_now(staffed):
    """An empty screen must not mean "all quiet" when a home is dead: a view started after a
    home went offline, and after an alarm, shows both at once."""
    lab, home = staffed
    never = lab.home("hem-never")  # enrolled, never started
    watch = lab.watch()
    home.simulate("alarm", kind="fall")
    watch.wait_case(lambda c: c["change"] == "opened")
    home.stop()
    watch.wait_other(lambda o: o.get("type") == "presence" and o.get("home") == home.id and o["state"] == "offline")
    view = subprocess.Popen([*TRYGG, "center", "watch", "--json", "--config", str(lab.center_config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    time.sleep(2)
    stop_process(view)
    out, err = view.stdout.read(), view.stderr.read()
    first = [json.loads(line) for line in out.splitlines()]
    other = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert [(c["type"], c["change"], c["home"]) for c in first] == [("case", "open_now", home.id)]
    now = {(o["home"], o["state"]) for o in other if o["type"] == "presence" and o["snapshot"]}
    assert {(home.id, "offline"), (never.id, "never")} <= now
    assert any(o["type"] == "receiver" and o["state"] == "connected" for o in other)


def test_the_view_comes_and_goes_while_the_service_receives_and_acknowledges(staffed):
    lab, home = staffed
    watch = lab.watch()
    stop_process(watch.view)
    ids = home.simulate("alarm", kind="fall") + home.simulate("event", count=5)
    [case] = wait_for(lambda: cases(lab, "--open"), 20, "the case opened with no view running")
    wait_for(lambda: home.depth() == 0, 20, "every event acknowledged with no view running")
    assert case["alarms"] == ids[:1]
    again = lab.watch()
    assert ids[0] not in again.ids()  # a view shows what happens from now on, and the open case


def test_rejected_messages_reach_a_view_as_a_summary_never_line_by_line(staffed):
    from tests.support.lab import RawCenter

    lab, home = staffed
    watch = lab.watch()
    raw = RawCenter(lab)
    for i in range(300):
        raw.client.publish(f"trygg/v1/{home.id}/up/event", os.urandom(200), qos=1)
    home.simulate("alarm", kind="fall")
    watch.wait_case(lambda c: c["change"] == "opened")
    time.sleep(1)
    # (the shared test broker also hands over other tests' retained statuses: rejected, from other homes)
    lines = [o for o in watch.other if o.get("type") == "rejected" and o.get("home") == home.id]
    assert len(lines) <= 1, lines  # the summary comes once a minute; the log has the first reason at once
    service_log = watch.log.with_suffix(".service.log").read_text()
    assert service_log.count(f"rejected a message from {home.id} ") == 1


def test_the_service_notifies_ready_and_feeds_the_watchdog(lab, tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.5)
    proc = subprocess.Popen([*TRYGG, "center", "run", "--config", str(lab.center_config)],
                            env={**ENV, "NOTIFY_SOCKET": path}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: list[str] = []
    try:
        read_notify(sock, {"READY=1", "WATCHDOG=1"}, seen)
        assert "READY=1" in seen and "WATCHDOG=1" in seen, seen
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()


def test_homes_shows_every_home_at_a_glance_those_needing_someone_first(staffed):
    lab, home = staffed
    lab.home("hem-never")  # enrolled, never started
    lab.watch()
    home.simulate("alarm", kind="fall")

    def rows():
        found = json.loads(center(lab, "homes", "--json").stdout)
        ours = {r["home"]: r for r in found}
        return found if ours.get(home.id, {}).get("version") and ours[home.id]["open_case"] else None
    found = wait_for(rows, 30, "the home's fleet report and open case")
    by_home = {r["home"]: r for r in found}
    ours, never = by_home[home.id], by_home["hem-never"]
    assert (never["presence"], ours["presence"]) == ("never", "online")
    assert 0 <= ours["cert_days_left"] <= 30  # the lab issues 30-day certificates
    assert set(ours["backlog"]) == {"alarm", "event", "telemetry", "test"} and ours["faults"] == []
    assert [r["home"] for r in found].index(home.id) < len(found)  # a home with an open case is listed
    assert all(r["open_case"] or r["presence"] != "online" for r in found[:2])  # needing a person first
    readable = center(lab, "homes").stdout
    assert "aldrig hörts av" in readable and home.id in readable


def test_an_untaken_alarm_is_escalated_then_raised_to_the_named_on_call_staff_each_once(staffed):
    lab, home = staffed
    edit_toml(lab.center_config, {"cases": {"accept_within_s": 5, "escalate_times": 1, "on_call": ["berit"]}})
    watch = lab.watch()
    home.simulate("alarm", kind="fall")
    opened = watch.wait_case(lambda c: c["change"] == "opened" and c["home"] == home.id)
    escalated = watch.wait_case(lambda c: c["change"] == "escalated:1", timeout=20)
    on_call = watch.wait_case(lambda c: c["change"] == "on_call:0", timeout=20)
    assert escalated["id"] == on_call["id"] == opened["id"] and on_call["on_call"] == ["berit"]
    assert "on_call" not in escalated  # only the on-call line names who is on call
    time.sleep(6)  # one more period: nothing is raised twice
    changes = [c["change"] for c in watch.cases if c["id"] == opened["id"]]
    assert changes.count("escalated:1") == 1 and changes.count("on_call:0") == 1
    assert not any(c.startswith("escalated:2") for c in changes)
    human = center(lab, "case", opened["id"]).stdout
    assert "ESKALERAT" in human and "TILL BEREDSKAPEN" in human and "i beredskap: berit" in human
    assert "escalated" not in human and "on_call" not in human  # staff read words, not field names


def test_an_on_call_name_that_is_not_a_staff_name_is_refused_in_the_config(lab):
    edit_toml(lab.center_config, {"cases": {"on_call": ["Berit Berg"]}})
    failed = center(lab, "cases", check=False)
    assert failed.returncode != 0 and "on_call" in failed.stderr and "Traceback" not in failed.stderr

"""A door that did not open must never reach the night staff as opened.

End to end, as a staff member at 3 a.m. sees it: a real daemon on MockFactory pins, the lab's
Mosquitto with mutual TLS, and `trygg center unlock HOME --as NAME` as its own process. The
exit code is the whole answer a script or a tired person acts on (0 done, 4 refused, 5 failed,
6 no answer), so each test checks the code, the printed verdict with its reason, and that the
device's own audit and lock state agree.

Two ways the door does not open: the bolt does not follow the relay (a jammed lock, played by
a scenario in `trygg run --simulate`), and the driver raising something nobody planned for (the
relay's GPIO write failing with EIO, in a daemon run inside the test so the pin can be made to
fail). Breaking the verdict anywhere on the way (driver, actions, commands, the center's
mapping to exit codes) turns one of these into "DONE" and fails a test here.
"""

import json


from center import config as center_config
from tests.support.lab import Lab, trygg, wait_for

EXIT_REFUSED, EXIT_FAILED = 4, 5
JAM_AT_ONCE = "start 10:00\n10:00 jam front-door\n"  # played once: the bolt stops following the relay


def unlock(lab: Lab, home, staff: str, timeout: float = 15) -> tuple[int, str, str]:
    """`trygg center unlock HOME --as NAME`, the way night staff type it (plain text, no --json)."""
    proc = trygg("center", "unlock", home.id, "--as", staff, "--timeout", timeout, "--config", lab.center_config,
                 check=False, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


def unlock_json(lab: Lab, home, staff: str, timeout: float = 15) -> tuple[int, dict | None]:
    proc = trygg("center", "unlock", home.id, "--as", staff, "--json", "--timeout", timeout,
                 "--config", lab.center_config, check=False, timeout=60)
    return proc.returncode, (json.loads(proc.stdout) if proc.stdout.strip() else None)


def command_audit(home) -> list[dict]:
    return [e["detail"] for e in home.audit() if e["kind"] == "command"]


def test_unlock_of_a_jammed_bolt_reaches_staff_as_failed_with_the_reason_then_refused(lab, tmp_path):
    scenario = tmp_path / "jam.txt"
    scenario.write_text(JAM_AT_ONCE)
    home = lab.home("hem-jam", simulate={"enabled": True, "scenario": str(scenario), "repeat": False})
    lab.enroll(home, "berit", "nurse")
    home.start()
    wait_for(lambda: home.status()["locks"].get("front-door") == "locked", 15, "the lock to read its bolt")

    code, out, err = unlock(lab, home, "berit")
    assert code == EXIT_FAILED, (code, out, err)
    assert "unlock front-door at hem-jam by berit: FAILED - front-door: bolt did not retract within 3 s" in out, out
    assert "DONE" not in out
    assert home.status()["locks"]["front-door"] == "jammed"
    failed = command_audit(home)[-1]  # on the device the reason and the name are sealed to the center
    assert failed["outcome"] == "failed" and failed["action"] == "unlock"

    # The lock now knows it is jammed: it refuses before switching the relay again (exit 4), still not DONE.
    code, result = unlock_json(lab, home, "berit")
    assert code == EXIT_REFUSED, (code, result)
    assert result["outcome"] == "refused" and "jammed" in result["reason"] and "send a technician" in result["reason"]
    assert home.status()["locks"]["front-door"] == "jammed"
    assert [d["outcome"] for d in command_audit(home)[-2:]] == ["failed", "refused"]


def test_unlock_whose_driver_raises_something_unexpected_reaches_staff_as_failed_with_the_error(lab, run_daemon):
    home = lab.home("hem-eio")
    lab.enroll(home, "berit", "nurse")
    daemon = run_daemon(home)
    lock = daemon.devices.devices.named("front-door")
    wait_for(lambda: lock.state == "locked", 10, "the lock to read its bolt")
    relay_pin = lock.relay.pin
    switch = relay_pin._change_state

    def gpio_write(value):  # the GPIO chip refuses to drive the relay on: neither a LockError nor a jam
        if value:
            raise OSError(5, "Input/output error")
        return switch(value)

    relay_pin._change_state = gpio_write

    code, out, err = unlock(lab, home, "berit")
    assert code == EXIT_FAILED, (code, out, err)
    assert "unlock front-door at hem-eio by berit: FAILED - OSError: [Errno 5] Input/output error" in out, out
    assert lock.state == "locked" and lock.visit is None  # nothing moved, and no visit was started
    failed = [e.detail for e in daemon.audit.entries() if e.kind == "command"][-1]
    assert failed["outcome"] == "failed" and failed["action"] == "unlock"
    assert daemon.commands.counts["failed"] == 1 and daemon.commands.counts["done"] == 0

    relay_pin._change_state = switch  # the control: the same home, the write works again, the door opens
    code, out, err = unlock(lab, home, "berit")
    assert code == 0 and ": DONE" in out, (code, out, err)
    assert lock.state == "unlocked"


def test_garbage_on_the_homes_event_topic_does_not_cost_staff_their_answer(lab):
    # Anyone with the center's broker identity can publish on a home's event topic; what does not
    # open with the center's keys is ignored by `trygg center unlock`, which still reports DONE.
    from protocol import topics
    from tests.support.lab import RawCenter

    home = lab.home("hem-noise")
    lab.enroll(home, "berit", "nurse")
    home.start()
    raw = RawCenter(lab)
    event_topic = topics.up(home.id, "event")
    try:
        raw.publish(event_topic, b"\x01\x01not an envelope" * 4, retain=True)  # arrives with the subscription
        code, out, err = unlock(lab, home, "berit")
        assert code == 0 and ": DONE" in out and "Traceback" not in err, (code, out, err)
    finally:
        raw.publish(event_topic, b"", retain=True)  # clear it on the shared broker
        raw.close()


def test_unlock_sent_with_a_challenge_used_up_meanwhile_is_sent_again_and_done(lab):
    # Two staff at once: the challenge this session read was used by the other one's command. The
    # device refuses the first try as stale; the session waits for the new challenge and sends a
    # new command once, whose answer is final (docs/protocol.md §13.2).
    from base.clock import SystemClock
    from base.keys import load_public
    from center import keyring
    from center.commander import Commander

    home = lab.home("hem-twice")
    lab.enroll(home, "berit", "nurse")
    lab.enroll(home, "anna", "night-staff")
    home.start()
    cfg = center_config.load(lab.center_config)

    def session(staff: str) -> Commander:
        return Commander(cfg, keyring.opening_keys(cfg), keyring.staff_identity(cfg, staff),
                         load_public(cfg.center.homes_dir / f"{home.id}.pub"), SystemClock())

    with session("berit") as berit:
        read = berit.status.challenge
        with session("anna") as anna:  # reads the same challenge and uses it up first
            assert anna.status.challenge == read and anna.send("ping", {}, timeout=15).outcome == "done"
        answer = berit.send("unlock", {"lock": "front-door"}, timeout=15)
    assert answer.outcome == "done" and answer.result["state"] == "unlocked", answer.result
    assert answer.command.challenge not in (None, read)
    audited = command_audit(home)
    assert [d["outcome"] for d in audited[-2:]] == ["refused", "done"]  # the stale try, then the new command

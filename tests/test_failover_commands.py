"""Staff commands reach a home on its second broker (issue 17): the center's Commander reads the
home's signed status on both brokers, goes by the freshest valid one, sends through both and
waits for the device's signed answer on both. Real Mosquitto processes on loopback, a real
daemon, the center's own CLI (`trygg center unlock|ping`)."""

import json
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from base.clock import SystemClock
from base.errors import ConfigError
from base.keys import Identity, load_private, load_public
from center import config as center_config
from center import keyring
from center.commander import CONNECT_TIMEOUT_S, Commander, NoAnswer
from protocol import envelope, topics
from protocol.messages import encode
from protocol.presence import signed_status
from tests.support.lab import trygg, wait_for
from tests.support.twobrokers import Publisher, home_on_both, two_brokers


@pytest.fixture
def two(pki, tmp_path):
    with two_brokers(pki, tmp_path) as lab_and_brokers:
        yield lab_and_brokers


def center_command(lab, action: str, home, staff: str, *extra, timeout: float = 15) -> tuple[int, dict | None, str, float]:
    started = time.monotonic()
    proc = trygg("center", action, home.id, "--as", staff, "--json", "--timeout", timeout, *extra,
                 "--config", lab.center_config, check=False)
    took = time.monotonic() - started
    result = json.loads(proc.stdout) if proc.stdout.strip() else None
    return proc.returncode, result, proc.stderr, took


def command_audit(home, command_id: str) -> list[dict]:
    """The device's own audit of every attempt of this command id, in order."""
    return [e["detail"] for e in home.audit() if e["kind"] == "command" and e["detail"].get("command") == command_id]


def commander(lab, home_id: str, staff: str | None, first_port: int | None = None) -> Commander:
    """A command session as the CLI opens one; first_port: the center's [broker] moved there."""
    cfg = center_config.load(lab.center_config)
    if first_port is not None:
        cfg = cfg.model_copy(update={"broker": cfg.broker.model_copy(update={"port": first_port})})
    identity = keyring.staff_identity(cfg, staff) if staff else None
    return Commander(cfg, keyring.opening_keys(cfg), identity, load_public(cfg.center.homes_dir / f"{home_id}.pub"),
                     SystemClock())


def connected_home(lab, second, home_id: str):
    """A running home on both brokers (on the first for now), nurse berit enrolled on it."""
    home = home_on_both(lab, second, home_id)
    lab.enroll(home, "berit", "nurse")
    home.start()
    wait_for(lambda: home.status()["link"] == "connected", 20, "the home to connect")
    return home


def test_a_home_on_its_second_broker_is_unlocked_by_the_center_cli_and_acts_once(two):
    lab, first, second = two
    home = connected_home(lab, second, "hem-fc1")
    assert home.status()["broker"] == "first"
    first.kill()  # the night the first broker is gone
    wait_for(lambda: home.status()["broker"] == "second" and home.status()["link"] == "connected", 20,
             "the home to move to its second broker")
    assert home.status()["locks"]["front-door"] == "locked"

    code, result, err, took = center_command(lab, "unlock", home, "berit")
    assert code == 0, err
    assert result["outcome"] == "done" and result["state"] == "unlocked" and result["staff"] == "berit"
    assert result["broker"] == "second", "the answer did not come through the second broker"
    assert home.status()["locks"]["front-door"] == "unlocked"
    assert [d["outcome"] for d in command_audit(home, result["command"])] == ["done"]
    print(f"unlock through the second broker, first killed: CLI {took:.2f} s, round trip {result['round_trip_ms']} ms")

    # The same signed command once more, sealed anew, through every broker: the device knows its id.
    with commander(lab, home.id, "berit") as session:
        cmd = session.prepare("lock", {"lock": "front-door"})
        signed = envelope.sign(encode(cmd), topics.command(home.id), session.staff.sign)
        answer = session.send_signed(cmd, signed, timeout=15)
        assert answer.outcome == "done" and answer.via == "broker_fallback"
        with pytest.raises(NoAnswer):  # a replay is audited, never answered, never acted on
            session.send_signed(cmd, signed, timeout=3)
    audited = command_audit(home, cmd.id)
    assert [d["outcome"] for d in audited] == ["done", "refused"] and audited[1]["reason_kind"] == "replayed", audited
    assert home.status()["locks"]["front-door"] == "locked"


def test_with_both_brokers_up_a_home_on_the_first_answers_there_once(two):
    lab, _first, second = two
    home = connected_home(lab, second, "hem-fc2")
    code, result, err, took = center_command(lab, "unlock", home, "berit")
    assert code == 0 and result["outcome"] == "done" and result["state"] == "unlocked", err
    assert result["broker"] == "first"
    assert home.status()["broker"] == "first" and home.status()["broker_switches"] == 0
    # the copy through the second broker found nobody there: one attempt, acted on once
    assert [d["outcome"] for d in command_audit(home, result["command"])] == ["done"]
    print(f"unlock with both brokers up, home on the first: CLI {took:.2f} s, round trip {result['round_trip_ms']} ms")


def test_the_freshest_valid_status_says_where_the_home_is_and_a_waiting_command_follows_it_there(two, pki):
    lab, first, second = two
    home = lab.home("hem-fc3")  # never started: the statuses are the test's, signed with the home's own key
    device = load_private(home.dir / "device.key")
    topic = topics.status(home.id)
    t0 = datetime.now(UTC) - timedelta(minutes=5)

    def status(state: str, when: datetime, key=device.sign, challenge: str | None = None) -> bytes:
        extra = {"clock_synced": True, "challenge": challenge} if state == "online" else {}
        return signed_status(home.id, state, when, 60, key, **extra)

    on_first, on_second = Publisher(pki, first.port), Publisher(pki, second.port)
    try:
        # the first holds the home's last will (written when it connected there), the second a later heartbeat
        on_first.publish(topic, status("offline", t0), retain=True)
        on_second.publish(topic, status("online", t0 + timedelta(seconds=30), challenge="a" * 32), retain=True)
        with commander(lab, home.id, None) as session:
            assert session.status.state == "online" and session.status.challenge == "a" * 32
            assert session.home_section == "broker_fallback"
            # newer still, but not signed by the home: ignored
            forged = Identity.generate(home.id)
            on_first.publish(topic, status("online", t0 + timedelta(minutes=1), key=forged.sign, challenge="b" * 32))
            # a doctor's probe (signed by the home, unretained, stamped 1970) moves nothing
            on_second.publish(topic, status("offline", datetime(1970, 1, 1, tzinfo=UTC)))
            # the home back on the first, later than anything on the second
            on_first.publish(topic, status("online", t0 + timedelta(minutes=2), challenge="c" * 32))
            session.wait_for_new_challenge("a" * 32, timeout=5)
            assert session.status.challenge == "c" * 32 and session.home_section == "broker"
            assert session._lanes[1].status.challenge == "a" * 32, "the 1970 probe replaced the second's status"
            # a command waiting for its answer follows the home to the second, though the second
            # still holds an online status of its own from an earlier visit
            cmd = session.prepare("ping", {})
            assert cmd.challenge == "c" * 32
            signed = envelope.sign(encode(cmd), topics.command(home.id), Identity.generate("berit").sign)
            moved = threading.Timer(0.5, lambda: on_second.publish(
                topic, status("online", t0 + timedelta(minutes=2, seconds=30), challenge="c" * 32)))
            moved.start()
            with pytest.raises(NoAnswer):  # no device here to answer it
                session.send_signed(cmd, signed, timeout=2)
            moved.join()
            assert session.home_section == "broker_fallback" and session.resent == 1
        # both say offline: the freshest is offline, and no command is sent
        on_second.publish(topic, status("offline", t0 + timedelta(minutes=3)), retain=True)
        on_first.publish(topic, status("offline", t0 + timedelta(minutes=1)), retain=True)
        with commander(lab, home.id, None) as session:
            assert session.status.state == "offline" and session.home_section == "broker_fallback"
            with pytest.raises(NoAnswer, match="offline"):
                session.prepare("ping", {})
    finally:
        on_first.close()
        on_second.close()


def test_a_silent_first_broker_costs_the_command_no_more_than_the_connect_time_out(two, pki):
    lab, first, second = two
    home = connected_home(lab, second, "hem-fc4")
    first.kill()
    wait_for(lambda: home.status()["broker"] == "second" and home.status()["link"] == "connected", 20,
             "the home to move to its second broker")
    silent = socket.socket()  # takes TCP connections (the kernel's backlog) and never says a word
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        session = commander(lab, home.id, "berit", first_port=silent.getsockname()[1])
        started = time.monotonic()
        with session:
            opened = time.monotonic() - started
            answer = session.send("ping", {}, timeout=15)
        assert answer.outcome == "done" and answer.via == "broker_fallback"
    finally:
        silent.close()
    assert opened < CONNECT_TIMEOUT_S + 1.5, f"a silent broker held the session up {opened:.1f} s"
    print(f"first broker silent (TCP accepted, no TLS): session ready in {opened:.2f} s "
          f"(CONNECT_TIMEOUT_S {CONNECT_TIMEOUT_S:g}), ping done")


def test_with_no_broker_reachable_the_cli_names_both(two):
    lab, first, second = two
    home = lab.home("hem-fc5")
    lab.enroll(home, "berit", "nurse")
    first.kill()
    second.kill()
    code, result, err, _took = center_command(lab, "ping", home, "berit")
    assert code == 6 and result is None
    assert f"127.0.0.1:{first.port}" in err and f"127.0.0.1:{second.port}" in err and "Traceback" not in err
    # a TLS file missing is the technician's to fix, named by its key, as with one broker
    cfg = center_config.load(lab.center_config)
    gone = lab.root / "no-such.key"
    cfg = cfg.model_copy(update={"broker": cfg.broker.model_copy(update={"key": gone}),
                                 "broker_fallback": cfg.broker_fallback.model_copy(update={"key": gone})})
    session = Commander(cfg, keyring.opening_keys(cfg), None, load_public(cfg.center.homes_dir / f"{home.id}.pub"),
                        SystemClock())
    with pytest.raises(ConfigError, match=r"^broker\.key: cannot read"):
        session.__enter__()


def test_an_unlock_sent_the_moment_the_first_broker_dies_is_carried_out_once_the_home_is_on_the_second(two):
    # The staff member's session is open (the home on the first); the first broker dies and the
    # unlock goes out at once, while the home is on neither. When the home comes online on the
    # second, the waiting command is published there again and acted on, once.
    lab, first, second = two
    home = connected_home(lab, second, "hem-fc6")
    with commander(lab, home.id, "berit") as session:
        assert session.home_section == "broker"
        first.kill()
        started = time.monotonic()
        answer = session.send("unlock", {"lock": "front-door"}, timeout=20)
        took = time.monotonic() - started
        assert answer.outcome == "done" and answer.result["state"] == "unlocked", answer.result
        assert answer.via == "broker_fallback" and session.home_section == "broker_fallback"
        assert session.resent == 1
    assert home.status()["broker"] == "second" and home.status()["locks"]["front-door"] == "unlocked"
    assert [d["outcome"] for d in command_audit(home, answer.command.id)] == ["done"]
    print(f"unlock sent as the first broker died: done through the second {took:.1f} s later "
          f"(the home's failover_after_s 2 s)")


def test_a_look_in_reaches_a_home_on_its_second_broker_and_its_picture_comes_back_there(two, tmp_path):
    from agent import config as cfgmod
    from agent.daemon import Daemon
    from tests.test_lookin_e2e import CAMERA, NtpClock

    lab, first, second = two
    home = home_on_both(lab, second, "hem-fc7", lookin=CAMERA)
    lab.enroll(home, "anna", "night-staff")
    daemon = Daemon(cfgmod.load(home.config), clock=NtpClock())  # in this process: its clock "synchronized"
    daemon.start()
    try:
        wait_for(lambda: daemon.status()["link"] == "connected", 20, "the home to connect")
        first.kill()
        wait_for(lambda: daemon.status()["broker"] == "second" and daemon.status()["link"] == "connected", 20,
                 "the home to move to its second broker")
        out = tmp_path / "look.jpg"
        proc = trygg("center", "lookin", home.id, "--as", "anna", "--out", out, "--json", "--timeout", 20,
                     "--config", lab.center_config, check=False)
        assert proc.returncode == 0, proc.stderr
        result = json.loads(proc.stdout)
        assert result["outcome"] == "done" and result["broker"] == "second" and result["files"] == [str(out)]
        assert out.read_bytes()[:2] == b"\xff\xd8" and out.stat().st_mode & 0o777 == 0o600  # a JPEG, private
        assert daemon.status()["lookin"]["used"] == 1
    finally:
        daemon.stop()

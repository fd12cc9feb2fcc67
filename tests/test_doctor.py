"""`trygg doctor`: each check's pass and its fail or warning, against real things - the lab PKI and
certificates made here (expired, wrong CN, another CA), the session's Mosquitto with the ACL Trygg
ships, files at 0644, gpiozero's MockFactory, a running daemon - and the exit codes through the CLI.
"""

import datetime
import json
import os
import pwd
import threading
from importlib.util import find_spec
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from gpiozero import Button
from gpiozero.pins.mock import MockFactory

from agent import checks_broker, checks_certs, checks_config, checks_daemon, checks_host, control
from agent import config as cfgmod
from agent.doctor import Env, default_pin_factory, diagnose
from base.configbase import BrokerConfig
from base.doctor import FAIL, PASS, WARN
from base.errors import ConfigError
from base.filecheck import ServiceUser
from base.labpki import add_client, make_lab_pki
from base.mqttconn import make_client
from protocol import topics
from tests.support.lab import edit_toml, trygg

NOW = datetime.datetime.now(datetime.UTC)


@pytest.fixture(autouse=True)
def _fresh_now():
    """NOW is each test's own start: certificates made during a long run must not predate it."""
    global NOW
    NOW = datetime.datetime.now(datetime.UTC)


def statuses(verdicts, check=None):
    return [v.status for v in verdicts if check is None or v.check == check]


def only(verdicts, check):
    found = [v for v in verdicts if v.check == check]
    assert len(found) == 1, verdicts
    return found[0]


@pytest.fixture
def home(lab):
    return lab.home(f"hem-doc{os.urandom(2).hex()}")


@pytest.fixture
def cfg(home):
    return cfgmod.load(home.config)


def me() -> ServiceUser:
    return ServiceUser.lookup(f"no-such-user-{os.getpid()}")  # falls back to whoever runs the test


# -- certificates -------------------------------------------------------------------------


def _cert(ca_dir: Path, cn: str, start, end, usage=ExtendedKeyUsageOID.CLIENT_AUTH) -> tuple[Path, Path]:
    """A client certificate from the lab CA in ca_dir, with the given dates."""
    ca_cert = x509.load_pem_x509_certificate((ca_dir / "ca.crt").read_bytes())
    ca_key = serialization.load_pem_private_key((ca_dir / "ca.key").read_bytes(), None)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False).sign(ca_key, hashes.SHA256()))
    out = ca_dir / f"{cn}-{os.urandom(2).hex()}"
    out.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out.with_suffix(".key").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    out.with_suffix(".key").chmod(0o600)
    return out.with_suffix(".crt"), out.with_suffix(".key")


def with_tls(cfg, ca: Path, cert: Path, key: Path):
    return cfg.model_copy(update={"broker": cfg.broker.model_copy(update={"ca": ca, "cert": cert, "key": key})})


def test_certificates_with_a_year_left_pass_and_name_their_days(cfg, tmp_path):
    pki = make_lab_pki(tmp_path / "pki", [cfg.home.id], days=400)
    verdicts = checks_certs.check_certificates(with_tls(cfg, pki.ca, *pki.client(cfg.home.id)), NOW)
    assert statuses(verdicts) == [PASS, PASS], verdicts
    assert "399 days left" in verdicts[1].detail or "400 days left" in verdicts[1].detail


def test_a_certificate_with_less_than_30_days_left_warns(cfg):
    verdicts = checks_certs.check_certificates(cfg, NOW + datetime.timedelta(days=5))  # the lab's: 30 days
    assert statuses(verdicts) == [WARN, WARN], verdicts
    assert "renew" in verdicts[1].fix


def test_an_expired_client_certificate_fails(cfg, pki):
    cert, key = _cert(pki.directory, cfg.home.id, NOW - datetime.timedelta(days=40), NOW - datetime.timedelta(days=1))
    verdict = checks_certs.check_certificates(with_tls(cfg, pki.ca, cert, key), NOW)[1]
    assert verdict.status == FAIL and "expired" in verdict.detail, verdict


def test_a_client_certificate_with_another_homes_cn_fails(cfg, pki):
    cert, key = add_client(pki, f"hem-other{os.urandom(2).hex()}")
    verdict = checks_certs.check_certificates(with_tls(cfg, pki.ca, cert, key), NOW)[1]
    assert verdict.status == FAIL and f"not the home id '{cfg.home.id}'" in verdict.detail, verdict
    assert f"CN = {cfg.home.id}" in verdict.fix


def test_a_certificate_without_client_auth_or_from_another_ca_or_with_the_wrong_key_fails(cfg, pki, tmp_path):
    server_only = _cert(pki.directory, cfg.home.id, NOW - datetime.timedelta(days=1), NOW + datetime.timedelta(days=90),
                        ExtendedKeyUsageOID.SERVER_AUTH)
    other = make_lab_pki(tmp_path / "other", [cfg.home.id], days=90)
    mine = pki.client(cfg.home.id)
    cases = {"clientAuth": server_only, "not issued by the CA": other.client(cfg.home.id),
             "does not match its key": (mine[0], other.client(cfg.home.id)[1])}
    for words, (cert, key) in cases.items():
        verdict = checks_certs.check_certificates(with_tls(cfg, pki.ca, cert, key), NOW)[1]
        assert verdict.status == FAIL and words in verdict.detail, (words, verdict)


# -- broker and ACL ----------------------------------------------------------------------


def test_broker_accepts_this_identity_and_its_acl_allows_the_homes_topics(cfg):
    device = checks_config.check_keys(cfg)[0]
    verdicts = checks_broker.check_broker(cfg, device.sign, timeout=10)
    assert [(v.check, v.status) for v in verdicts] == [("broker", PASS), ("broker publish", PASS),
                                                       ("broker subscribe", PASS)], verdicts


def test_a_certificate_the_acl_gives_other_topics_fails_the_publish_probe_with_the_acl_fix(cfg, pki):
    cert, key = add_client(pki, f"hem-stranger{os.urandom(2).hex()}")  # CN is not this home: %u differs
    device = checks_config.check_keys(cfg)[0]
    verdicts = checks_broker.check_broker(with_tls(cfg, pki.ca, cert, key), device.sign, timeout=10)
    publish = only(verdicts, "broker publish")
    assert publish.status == FAIL and "0x87" in publish.detail, verdicts
    assert "ACL" in publish.fix and cfg.home.id in publish.fix


def test_an_unreachable_broker_fails_with_its_address(cfg):
    from tests.support.broker import free_port

    moved = cfg.model_copy(update={"broker": cfg.broker.model_copy(update={"port": free_port()})})
    verdict = checks_broker.check_broker(moved, None, timeout=5)[0]
    assert verdict.status == FAIL and f"{moved.broker.port}" in verdict.detail and "Refused" in verdict.detail


def test_the_probe_leaves_the_retained_status_staff_see_alone(lab, run_daemon, pki, broker):
    home = lab.home(f"hem-probe{os.urandom(2).hex()}")
    run_daemon(home)
    cfg = cfgmod.load(home.config)
    device = checks_config.check_keys(cfg)[0]
    retained = _retained(pki, broker.port, topics.status(cfg.home.id))
    assert b"online" in retained
    assert statuses(checks_broker.check_broker(cfg, device.sign, timeout=10)) == [PASS, PASS, PASS]
    assert _retained(pki, broker.port, topics.status(cfg.home.id)) == retained


def _retained(pki, port: int, topic: str) -> bytes:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"peek-{os.urandom(3).hex()}",
                         protocol=mqtt.MQTTv5)
    client.tls_set(ca_certs=str(pki.ca), certfile=str(pki.client("center")[0]), keyfile=str(pki.client("center")[1]))
    got, done = [], threading.Event()
    client.on_message = lambda c, u, m: (got.append(bytes(m.payload)), done.set()) if m.retain else None
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, 1)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert done.wait(10), f"no retained message on {topic}"
        return got[0]
    finally:
        client.disconnect()
        client.loop_stop()


def test_run_with_a_missing_tls_key_says_which_key_and_file(tmp_path, pki):
    broker = BrokerConfig(host="127.0.0.1", ca=pki.ca, cert=pki.client("center")[0], key=tmp_path / "gone.key")
    with pytest.raises(ConfigError, match=rf"broker\.key: cannot read {tmp_path / 'gone.key'}"):
        make_client("x", broker)


# -- files, keys and the config ----------------------------------------------------------


def test_files_at_0644_and_a_missing_ca_fail_with_their_fix(home, cfg):
    cfg.keys.device.chmod(0o644)
    cfg.outbox.path.touch(mode=0o600)
    wal = cfg.outbox.path.with_name(cfg.outbox.path.name + "-wal")
    wal.touch(mode=0o644)
    wal.chmod(0o644)
    ca = home.dir / "ca-copy.crt"
    edit_toml(home.config, {"broker": {"ca": str(ca)}})
    _, verdicts = checks_config.check_config_file(home.config, cfgmod.DeviceConfig, me())
    files = [v for v in verdicts if v.check == "files"]
    assert {v.status for v in files} == {FAIL}
    assert any("keys.device" in v.detail and "0644" in v.detail and v.fix == f"chmod 600 {cfg.keys.device}"
               for v in files), files
    assert any(f"broker.ca: no such file {ca}" == v.detail for v in files), files
    assert any(v.detail.startswith(f"outbox.path: {wal} is readable by others") for v in files), files


def test_files_the_service_user_cannot_read_fail(home):
    nobody = ServiceUser("nobody", 65534, 65534, frozenset({65534}))  # the files are the test's, 0600
    _, verdicts = checks_config.check_config_file(home.config, cfgmod.DeviceConfig, nobody)
    assert any(v.check == "files" and v.status == FAIL and "nobody cannot" in v.detail for v in verdicts), verdicts


def test_a_good_config_and_its_keys_pass(home, cfg):
    _, verdicts = checks_config.check_config_file(home.config, cfgmod.DeviceConfig, me())
    assert statuses(verdicts) == [PASS, PASS], verdicts
    device, keys = checks_config.check_keys(cfg)
    assert device is not None and statuses(keys) == [PASS, PASS]
    cfg.keys.center.unlink()
    assert statuses(checks_config.check_keys(cfg)[1], "center key") == [FAIL]


# -- the device: clock, disk, pins, camera, speaker --------------------------------------


def test_clock_and_disk(cfg):
    assert checks_host.check_clock(True).status == PASS
    assert checks_host.check_clock(False).status == WARN
    assert checks_host.check_disk(cfg, lambda p: 10 * 1024**3).status == PASS
    assert checks_host.check_disk(cfg, lambda p: cfg.outbox.min_free_bytes + 1).status == WARN
    assert checks_host.check_disk(cfg, lambda p: 1024).status == FAIL


def test_no_pin_factory_on_this_machine_fails_with_how_to_install_lgpio(cfg, tmp_path, monkeypatch):
    from gpiozero import Device

    monkeypatch.setattr(Device, "pin_factory", None)  # as in a fresh `trygg doctor` process
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "lgpio")  # this machine has no lgpio (nor a Pi): it fails for real
    board = cfg.model_copy(update={"gpio": cfg.gpio.model_copy(update={"pins": "board"})})
    model = tmp_path / "model"
    model.write_text("Raspberry Pi 5 Model B Rev 1.0\x00")
    verdicts = checks_host.check_gpio(board, default_pin_factory, model, daemon_running=False)
    assert statuses(verdicts) == [FAIL] and "Raspberry Pi 5" in verdicts[0].detail
    assert "apt install python3-lgpio" in verdicts[0].fix


def test_each_configured_pin_is_checked_free_on_the_injected_factory(cfg):
    board = cfg.model_copy(update={"gpio": cfg.gpio.model_copy(update={"pins": "board"})})
    factory = MockFactory()
    verdicts = checks_host.check_gpio(board, lambda: factory, Path("/nonexistent"), daemon_running=False)
    assert statuses(verdicts) == [PASS, PASS], verdicts
    held = Button(board.pins()[0][1], pin_factory=factory)  # something else holds the first pin
    try:
        verdicts = checks_host.check_gpio(board, lambda: factory, Path("/nonexistent"), daemon_running=False)
        assert statuses(verdicts) == [PASS, FAIL] and board.pins()[0][0] in verdicts[1].detail, verdicts
    finally:
        held.close()
    assert statuses(checks_host.check_gpio(cfg, lambda: factory, Path("/x"), False)) == [WARN]  # pins = "mock"


def test_camera_and_speaker_present_when_configured(cfg, tmp_path):
    assert checks_host.check_camera(cfg, tmp_path).status == PASS  # none configured
    usb = cfg.model_copy(update={"lookin": cfg.lookin.model_copy(update={"camera": "opencv", "device": 0})})
    assert checks_host.check_camera(usb, tmp_path).status == FAIL
    (tmp_path / "video0").touch()
    assert checks_host.check_camera(usb, tmp_path).status == PASS
    if find_spec("picamera2") is None:  # not on this machine: the Pi camera's library comes from the OS
        pi = cfg.model_copy(update={"lookin": cfg.lookin.model_copy(update={"camera": "picamera2"})})
        assert checks_host.check_camera(pi, tmp_path).fix == "apt install python3-picamera2"
    speech = cfg.model_copy(update={"help_coming": cfg.help_coming.model_copy(update={"speaker": "speech"})})
    cards = tmp_path / "cards"
    cards.write_text(" 0 [Headphones     ]: bcm2835_headpho - bcm2835 Headphones\n")
    assert checks_host.check_speaker(speech, lambda t: f"/usr/bin/{t}", cards).status == PASS
    assert "espeak-ng" in checks_host.check_speaker(speech, lambda t: None, cards).fix
    cards.write_text("--- no soundcards ---\n")
    assert checks_host.check_speaker(speech, lambda t: f"/usr/bin/{t}", cards).status == FAIL


# -- the daemon and the whole report -----------------------------------------------------


def test_daemon_drivers_and_outbox_from_the_running_daemon(home, run_daemon, cfg):
    status, verdict = checks_daemon.ask_status(control.request, cfg.control.socket)
    assert status is None and verdict.status == FAIL and "not running" in verdict.detail
    run_daemon(home)
    status, verdict = checks_daemon.ask_status(control.request, cfg.control.socket)
    assert verdict.status == PASS
    assert statuses(checks_daemon.check_running(cfg, status)) == [PASS, PASS]
    assert checks_daemon.check_outbox(cfg, status).status == PASS
    status["outbox"]["classes"]["alarm"] = {"depth": 1, "oldest_age_s": 3 * cfg.outbox.resend_after_s}
    assert checks_daemon.check_outbox(cfg, status).status == FAIL


def test_cli_exit_codes_and_json(home):
    user = ["--user", pwd.getpwuid(os.geteuid()).pw_name]  # the files are the test's, not a trygg user's
    stopped = trygg("doctor", "--json", "--config", home.config, *user, check=False)
    assert stopped.returncode == 2, stopped.stderr
    report = json.loads(stopped.stdout)
    assert report["status"] == FAIL
    assert {"check": "daemon", "status": FAIL} in [{k: c[k] for k in ("check", "status")} for c in report["checks"]]
    home.start()
    running = trygg("doctor", "--config", home.config, *user, check=False)
    # Warnings only: the lab's 30-day certificates, mock pins, and (here) a clock without NTP.
    assert running.returncode == 1, running.stdout
    assert "FAIL" not in running.stdout and "WARN  gpio" in running.stdout
    assert "ok    broker publish" in running.stdout and "ok    drivers" in running.stdout


def test_a_config_that_does_not_load_still_gets_its_files_checked(home, tmp_path):
    home.config.write_bytes(home.config.read_bytes().replace(b'[home]', b'[home]\nbogus = "\xff"'))
    (home.dir / "device.key").chmod(0o644)
    verdicts = diagnose(home.config, Env(user=me(), clock_synced=lambda: True, pin_factory=MockFactory))
    details = [v.detail for v in verdicts if v.status == FAIL]
    assert any("not UTF-8" in d for d in details) and any("home.bogus: unknown key" in d for d in details)
    assert any("keys.device" in d and "0644" in d for d in details), details
    assert verdicts[-1].check == "other checks"


def test_a_whole_report_runs_every_check_with_injected_parts(home, run_daemon):
    run_daemon(home)
    verdicts = diagnose(home.config, Env(user=me(), clock_synced=lambda: True, pin_factory=MockFactory))
    checks = [v.check for v in verdicts]
    for name in ("config", "files", "device key", "center key", "certificate broker.cert", "broker", "broker publish",
                 "broker subscribe", "clock", "disk", "daemon", "gpio", "camera", "speaker", "drivers", "outbox"):
        assert name in checks, (name, checks)
    assert FAIL not in statuses(verdicts), [v for v in verdicts if v.status == FAIL]


def test_the_receiver_takes_the_probe_as_no_news_for_a_known_and_an_unknown_home(desk):
    """What staff see is the receiver's presence and rejections: the probe changes neither."""
    from center.homes import HomeRegistry
    from center.receiver import Receiver
    from center.store import EventStore
    from protocol.presence import signed_status
    from tests.support.receiverdesk import Sink

    known, never_heard = desk.home(), desk.home()
    sink, store = Sink(), EventStore(desk.cfg.center.store)
    receiver = Receiver(desk.cfg, desk.key, HomeRegistry(desk.homes_dir), store, sink, desk.clock)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="never-connected", protocol=mqtt.MQTTv5,
                         manual_ack=True)

    def handle(home, payload: bytes) -> None:
        message = mqtt.MQTTMessage(mid=1, topic=topics.status(home.name).encode())
        message.payload, message.qos, message.retain = payload, 1, False
        receiver.handle(client, [message])

    handle(known, signed_status(known.name, "online", NOW, 60, known.key.sign))
    assert sink.presences == [(known.name, "online")]
    for home in (known, never_heard):
        handle(home, checks_broker.probe_status(home.name, 60, home.key.sign))
    assert sink.presences == [(known.name, "online")] and sink.rejects == []
    store.close()


def test_a_second_broker_is_checked_like_the_first(cfg):
    from agent.doctor import broker_sections

    second = cfg.model_copy(update={"broker_fallback": cfgmod.FallbackBrokerConfig(**cfg.broker.model_dump())})
    assert broker_sections(cfg) == ["broker"] and broker_sections(second) == ["broker", "broker_fallback"]
    device = checks_config.check_keys(cfg)[0]
    verdicts = checks_broker.check_broker(second, device.sign, 10, section="broker_fallback")
    assert [(v.check, v.status) for v in verdicts] == [("broker_fallback", PASS), ("broker_fallback publish", PASS),
                                                       ("broker_fallback subscribe", PASS)], verdicts
    certs = checks_certs.check_certificates(second, NOW, section="broker_fallback")
    assert [v.check for v in certs] == ["certificate broker_fallback.ca", "certificate broker_fallback.cert"]


def test_a_certificate_the_broker_does_not_trust_fails_the_connection(cfg, pki, tmp_path):
    other = make_lab_pki(tmp_path / "other", [cfg.home.id], days=90)
    verdict = checks_broker.check_broker(with_tls(cfg, pki.ca, *other.client(cfg.home.id)), None, timeout=5)[0]
    assert (verdict.check, verdict.status) == ("broker", FAIL), verdict
    assert "did not accept" in verdict.detail or "cannot connect" in verdict.detail, verdict


def test_run_refuses_a_tls_key_others_can_read_naming_its_key(tmp_path, pki):
    from base.errors import KeyFileError

    cert, key = pki.client("center")
    loose = tmp_path / "loose.key"
    loose.write_bytes(key.read_bytes())
    loose.chmod(0o644)
    broker = BrokerConfig(host="127.0.0.1", ca=pki.ca, cert=cert, key=loose)
    with pytest.raises(KeyFileError, match=rf"broker\.key: {loose} is a TLS private key readable by all users "
                                           rf"\(mode 644\); run chmod 600 {loose}"):
        make_client("x", broker)
    loose.chmod(0o600)
    make_client("x", broker)

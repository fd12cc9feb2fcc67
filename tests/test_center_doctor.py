"""`trygg center doctor`: each check passes on a healthy center and fails (or warns) on the real
fault, against real things: a Mosquitto with mutual TLS and the shipped ACL, a PKI of its own
(certificates a year long, so a healthy center has no expiry warning), real SQLite stores (and
PostgreSQL where the fixture has one), real key files, the real receiving service. Also: a
receiver whose certificate the ACL gives no read right says so, and a config of the wrong side
says so in one line."""

import datetime
import json
import logging
import os
import re
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from agent.cli import main
from base.doctor import FAIL, PASS, WARN
from base.keys import Identity, write_private, write_public
from base.labpki import make_lab_pki
from center import config as cfgmod
from center import doctorchecks, subscheck
from center.doctor import diagnose
from center.service import Service
from center.store import EventStore
from tests.support.broker import Broker
from tests.support.lab import wait_for

NOW = datetime.datetime.now(datetime.UTC)


@pytest.fixture(autouse=True)
def _fresh_now():
    """NOW is each test's own start: certificates made during a long run must not predate it."""
    global NOW
    NOW = datetime.datetime.now(datetime.UTC)
PROBE_S = 2.0


@pytest.fixture(scope="module")
def yearpki(tmp_path_factory):
    return make_lab_pki(tmp_path_factory.mktemp("doctorpki") / "lab", ["center", "intruder"], days=400)


@pytest.fixture(scope="module")
def yearbroker(yearpki, tmp_path_factory):
    with Broker(tmp_path_factory.mktemp("doctorbroker"), yearpki) as b:
        yield b


def make_center(root: Path, pki, port: int, identity: str = "center", staff: bool = True, homes: int = 1,
                extra: str = "", store: str | None = None) -> Path:
    """A center directory as `trygg center init` makes it, and its config path."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "homes").mkdir(mode=0o700)
    write_private(Identity.generate("center"), root / "center.key")
    for i in range(homes):
        write_public(Identity.generate(f"hem-{i}").public(), root / "homes" / f"hem-{i}.pub")
    if staff:
        (root / "staff").mkdir(mode=0o700)
        write_public(Identity.generate("anna").public(), root / "staff" / "anna.pub")
    cert, key = pki.client(identity)
    store_line = f'\n[store]\nurl = "{store}"\n' if store else ""
    (root / "center.toml").write_text(
        f'[center]\nname = "dr-{os.urandom(3).hex()}"\nsession_expiry_s = 0\n{extra}\n'
        f'[broker]\nhost = "127.0.0.1"\nport = {port}\nca = "{pki.ca}"\ncert = "{cert}"\nkey = "{key}"\n{store_line}')
    return root / "center.toml"


def by_check(verdicts) -> dict[str, list]:
    out: dict[str, list] = {}
    for v in verdicts:
        out.setdefault(v.check, []).append(v)
    return out


def status(verdicts, check: str) -> str:
    return max((v.status for v in verdicts if v.check == check), key=[PASS, WARN, FAIL].index)


class Running:
    """The real receiving service (`trygg center run`) on a thread, until the test ends."""

    def __init__(self, config: Path) -> None:
        self.cfg = cfgmod.load(config)
        self.service = Service(self.cfg)
        self.thread = threading.Thread(target=self.service.run, daemon=True)
        self.thread.start()

    def store_state(self) -> str | None:
        return self._row()[1]

    def store_report(self) -> str:
        """What the service last reported of the broker to the store (JSON text, "" before it did)."""
        return self._row()[4] or ""

    def _row(self) -> tuple:
        store = EventStore(self.cfg.store_url)
        try:
            rows = store.receiver_reports()
        finally:
            store.close()
        return rows[0] if rows else (None,) * 5

    def stop(self) -> None:
        self.service.stop()
        self.thread.join(30)


@pytest.fixture
def running():
    started: list[Running] = []

    def start(config: Path) -> Running:
        started.append(Running(config))
        return started[-1]
    yield start
    for r in started:
        r.stop()


def cli(*args) -> tuple[int, str]:
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.output


# -- the whole report through the CLI: exit codes 0, 1, 2 -------------------------------------------

def test_a_healthy_center_passes_every_check_and_exits_0(tmp_path, yearpki, yearbroker, running):
    config = make_center(tmp_path / "c", yearpki, yearbroker.port)
    rx = running(config)
    wait_for(lambda: rx.store_state() == "connected", 20, "the receiving service connected")
    code, out = cli("center", "doctor", "--config", config)
    assert code == 0, out
    assert "0 warnings, 0 failed" in out and "probe delivered back" in out
    code, out = cli("center", "doctor", "--json", "--config", config)
    report = json.loads(out)
    assert code == 0 and report["status"] == "pass", out
    assert {c["check"] for c in report["checks"]} >= {"config", "store", "broker", "keys", "homes",
                                                      "broker certificate", "web console"}
    assert any(c["check"].startswith("receiver ") and c["status"] == "pass" for c in report["checks"])
    assert all(not lane.not_receiving and lane.connected.is_set() for lane in rx.service.lanes)


def test_a_warning_exits_1_and_names_its_fix(tmp_path, yearpki, yearbroker, running):
    config = make_center(tmp_path / "c", yearpki, yearbroker.port, staff=False)  # no staff keys: a warning
    rx = running(config)
    wait_for(lambda: rx.store_state() == "connected", 20, "the receiving service connected")
    code, out = cli("center", "doctor", "--config", config)
    assert code == 1, out
    assert "WARN  keys:" in out and "fix: enroll staff keys" in out and "1 warnings, 0 failed" in out


def test_a_config_with_two_errors_fails_once_naming_both_and_exits_2(tmp_path, yearpki, yearbroker):
    config = make_center(tmp_path / "c", yearpki, yearbroker.port, extra="silent_after_heartbeats = 0\ncolour = 1")
    code, out = cli("center", "doctor", "--config", config)
    assert code == 2
    [line] = [line for line in out.splitlines() if line.startswith("FAIL  config:")]
    assert "center.silent_after_heartbeats" in line and "center.colour: unknown key" in line


# -- a config of the other side: one line ----------------------------------------------------------

def test_a_device_config_given_to_a_center_command_says_so_in_one_line(tmp_path):
    device = tmp_path / "trygg.toml"
    device.write_text(Path("config/trygg.example.toml").read_text())
    for command in (["center", "doctor"], ["center", "receivers"]):
        code, out = cli(*command, "--config", device)
        assert code in (1, 2)
        assert "this is a device config (trygg.toml); `trygg center` needs the center's config, " \
               "e.g. /etc/trygg-center/center.toml" in out
        assert "unknown key" not in out


def test_a_center_config_given_to_the_device_says_so_in_one_line(tmp_path, yearpki):
    """(`trygg config validate` takes either side's config on purpose; the daemon's loading does not.)"""
    from agent import config as device_config
    from base.errors import ConfigError

    config = make_center(tmp_path / "c", yearpki, 1883)
    with pytest.raises(ConfigError) as raised:
        device_config.load(config)
    assert str(raised.value) == (f"{config}: this is a center config (center.toml); `trygg` needs the device's "
                                 "config, e.g. /etc/trygg/trygg.toml")


def test_center_help_names_the_center_config_as_default():
    code, out = cli("center", "doctor", "--help")
    out = " ".join(out.split()).replace("trygg- center", "trygg-center")  # click wraps at a hyphen
    assert code == 0 and "/etc/trygg-center/center.toml" in out and "trygg.toml" not in out


# -- the broker ---------------------------------------------------------------------------------------

def test_broker_unreachable_fails(tmp_path, yearpki):
    from tests.support.broker import free_port

    config = make_center(tmp_path / "c", yearpki, free_port())
    [v] = by_check(diagnose(config, probe_wait_s=PROBE_S))["broker"]
    assert v.status == FAIL and "cannot connect" in v.detail and v.fix


def test_broker_certificate_from_another_ca_fails_the_tls_check(tmp_path, yearpki, yearbroker):
    other = make_lab_pki(tmp_path / "other", ["center"], days=400)
    config = make_center(tmp_path / "c", other, yearbroker.port)  # our CA does not know the broker's
    [v] = by_check(diagnose(config, probe_wait_s=PROBE_S))["broker"]
    assert v.status == FAIL and "not accepted" in v.detail


def test_an_identity_the_acl_gives_no_read_right_fails_the_broker_check(tmp_path, yearpki, yearbroker):
    """Mosquitto grants the SUBSCRIBE and then delivers nothing: the probe shows it."""
    config = make_center(tmp_path / "c", yearpki, yearbroker.port, identity="intruder")
    [v] = by_check(diagnose(config, probe_wait_s=PROBE_S))["broker"]
    assert v.status == FAIL and subscheck.RECEIVES_NOTHING in v.detail and "'intruder'" in v.detail


# -- a receiver the ACL does not let read ----------------------------------------------------------------

def test_a_receiver_that_may_not_read_says_so_everywhere_and_fails_doctor(tmp_path, yearpki, yearbroker, running,
                                                                          caplog):
    config = make_center(tmp_path / "c", yearpki, yearbroker.port, identity="intruder")
    caplog.set_level(logging.INFO)
    rx = running(config)
    wait_for(lambda: all(lane.last_error for lane in rx.service.lanes), 20, "both lanes to say they receive nothing")
    for lane in rx.service.lanes:
        assert subscheck.RECEIVES_NOTHING in lane.last_error and not lane.connected.is_set() and lane.not_receiving
        assert any(subscheck.RECEIVES_NOTHING in w for w in lane.broker_warnings)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("alarm lane" in e and subscheck.RECEIVES_NOTHING in e for e in errors)
    assert any("not receiving" in r.getMessage() for r in caplog.records)  # the link line
    wait_for(lambda: rx.store_state() == "not receiving" and subscheck.RECEIVES_NOTHING in rx.store_report(), 10,
             "the store to show the receiver not receiving")
    _, out = cli("center", "receivers", "--config", config)
    assert f"WARNING: {subscheck.RECEIVES_NOTHING}" in out
    verdicts = diagnose(config, probe_wait_s=PROBE_S)
    [receiver] = [v for v in verdicts if v.check.startswith("receiver ")]
    assert receiver.status == FAIL and subscheck.RECEIVES_NOTHING in receiver.detail


@pytest.fixture(scope="module")
def acl_at_subscribe_broker(yearpki, tmp_path_factory):
    """Mosquitto with its dynamic-security plugin, which (unlike acl_file) judges a SUBSCRIBE and
    answers 0x87 Not authorized in the SUBACK: the center may read trygg/v1/# (not $SYS), an
    intruder nothing."""
    work = tmp_path_factory.mktemp("dynsec")
    rules = work / "dynamic-security.json"
    rules.write_text(json.dumps({
        "defaultACLAccess": {"publishClientSend": False, "publishClientReceive": True, "subscribe": False,
                             "unsubscribe": True},
        "clients": [{"username": "center", "roles": [{"rolename": "receiver"}]}, {"username": "intruder"}],
        "groups": [],
        "roles": [{"rolename": "receiver", "acls": [
            {"acltype": "subscribePattern", "topic": "trygg/v1/#", "priority": 0, "allow": True},
            {"acltype": "publishClientSend", "topic": "trygg/v1/#", "priority": 0, "allow": True}]}]}))
    rules.chmod(0o600)
    plugin = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")
    if not plugin.exists():
        pytest.skip(f"Mosquitto's dynamic-security plugin is not installed ({plugin})")
    with Broker(work / "broker", yearpki, acl=False,
                extra=(f"plugin {plugin}", f"plugin_opt_config_file {rules}")) as b:
        yield b


def test_a_subscription_refused_in_the_suback_is_shown_and_fails_doctor(tmp_path, yearpki, acl_at_subscribe_broker,
                                                                         running):
    config = make_center(tmp_path / "c", yearpki, acl_at_subscribe_broker.port, identity="intruder")
    rx = running(config)
    wait_for(lambda: all(lane.last_error for lane in rx.service.lanes), 20, "both lanes to say they are refused")
    for lane in rx.service.lanes:
        assert "refused the subscription" in lane.last_error and "0x87" in lane.last_error
        assert lane.subscriptions()[0] in lane.last_error and not lane.connected.is_set()
    wait_for(lambda: "refused the subscription" in rx.store_report(), 10, "the service to report it to the store")
    verdicts = by_check(diagnose(config, probe_wait_s=PROBE_S))
    [broker] = verdicts["broker"]
    assert broker.status == FAIL and "refused the subscription" in broker.detail
    [receiver] = [v for check, vs in verdicts.items() if check.startswith("receiver ") for v in vs]
    assert receiver.status == FAIL and "refused the subscription" in receiver.detail


def test_the_center_on_a_broker_judging_subscribe_passes_without_the_sys_counter(tmp_path, yearpki,
                                                                                  acl_at_subscribe_broker, running):
    """The broker's dropped-message count ($SYS) refused is no reason to call the receiver deaf."""
    config = make_center(tmp_path / "c", yearpki, acl_at_subscribe_broker.port)
    rx = running(config)
    wait_for(lambda: rx.store_state() == "connected", 20, "the receiving service connected")
    assert all(not lane.not_receiving for lane in rx.service.lanes)
    verdicts = by_check(diagnose(config, probe_wait_s=PROBE_S))
    assert verdicts["broker"][0].status == PASS
    assert [v.status for check, vs in verdicts.items() if check.startswith("receiver ") for v in vs] == [PASS]


def test_probes_from_any_receiver_are_dropped_silently_never_shown_or_recorded(desk):
    sink = desk.start()  # its own probe came back (or it would not be connected)
    desk.wire.publish("trygg/v1/center/up/test", subscheck.new_probe())  # another receiver's
    desk.wire.publish("trygg/v1/hem-9/up/alarm", subscheck.new_probe())
    desk.settle()
    # (the shared broker may hold other tests' retained statuses: only these two topics are this test's)
    assert [r for r in sink.rejects if r[0].startswith(("trygg/v1/center/", "trygg/v1/hem-9/"))] == []
    assert all(e.home == desk.probe.name for e in sink.events)  # only the desk's own sealed probe events
    assert [row for row in desk.rows() if "center" in row[3] or "hem-9" in row[3]] == []
    assert not desk.receiver.not_receiving and desk.receiver.last_error is None


# -- the store --------------------------------------------------------------------------------------------

def test_store_missing_and_store_behind_the_latest_step_fail(tmp_path, yearpki):
    config = make_center(tmp_path / "c", yearpki, 1883)
    cfg = cfgmod.load(config)
    verdict, db = doctorchecks.store(cfg)
    assert verdict.status == FAIL and "no store at" in verdict.detail and db is None
    EventStore(cfg.store_url).close()  # migrates
    verdict, db = doctorchecks.store(cfg)
    assert verdict.status == PASS and "(latest)" in verdict.detail
    with db.tx() as tx:  # as a store an older release left: its later steps not applied
        tx.execute("DELETE FROM schema_version WHERE version > 1")
    db.close()
    verdict, db = doctorchecks.store(cfg)
    db.close()
    assert verdict.status == FAIL and "schema step 1 of" in verdict.detail and "migrates at start" in verdict.fix
    cfg.center.store.unlink()
    cfg.center.store.write_bytes(b"not a database at all, just bytes" * 100)
    os.chmod(cfg.center.store, 0o600)
    verdict, db = doctorchecks.store(cfg)
    assert verdict.status == FAIL and "not a Trygg store" in verdict.detail


def test_store_readable_by_others_fails(tmp_path, yearpki):
    cfg = cfgmod.load(make_center(tmp_path / "c", yearpki, 1883))
    EventStore(cfg.store_url).close()
    os.chmod(cfg.center.store, 0o644)
    verdict, _ = doctorchecks.store(cfg)
    assert verdict.status == FAIL and "chmod 600" in verdict.fix


def test_postgresql_store_reachable_and_migrated_or_not(tmp_path, yearpki, pg_url):
    cfg = cfgmod.load(make_center(tmp_path / "c", yearpki, 1883, store=pg_url))
    verdict, db = doctorchecks.store(cfg)
    assert verdict.status == FAIL and "not a Trygg store" in verdict.detail  # empty database
    EventStore(pg_url).close()
    verdict, db = doctorchecks.store(cfg)
    db.close()
    assert verdict.status == PASS and "PostgreSQL" in verdict.detail


# -- keys, homes ----------------------------------------------------------------------------------------------

def test_keys_missing_or_readable_by_others_fail(tmp_path, yearpki):
    cfg = cfgmod.load(make_center(tmp_path / "c", yearpki, 1883))
    assert [v.status for v in doctorchecks.keys(cfg)] == [PASS]
    write_private(Identity.generate("berit"), cfg.center.staff_dir / "berit.key")
    os.chmod(cfg.center.staff_dir / "berit.key", 0o644)
    os.chmod(cfg.center.key, 0o644)
    verdicts = doctorchecks.keys(cfg)
    assert [v.status for v in verdicts] == [FAIL, FAIL]
    assert all(v.fix.startswith("chmod 600") for v in verdicts)
    cfg.center.key.unlink()
    assert "missing" in doctorchecks.keys(cfg)[0].detail


def test_homes_counted_and_a_stray_file_warned(tmp_path, yearpki):
    cfg = cfgmod.load(make_center(tmp_path / "c", yearpki, 1883, homes=3))
    v = doctorchecks.homes(cfg)
    assert v.status == PASS and "3 home(s)" in v.detail
    (cfg.center.homes_dir / "hem-0.pub").rename(cfg.center.homes_dir / "old-hem-0.pub")
    (cfg.center.homes_dir / "notes.txt").write_text("x")
    v = doctorchecks.homes(cfg)
    assert v.status == WARN and "2 home(s)" in v.detail and "old-hem-0.pub" in v.detail and "notes.txt" in v.detail
    for p in cfg.center.homes_dir.iterdir():
        p.unlink()
    assert doctorchecks.homes(cfg).status == WARN


# -- certificates --------------------------------------------------------------------------------------------

def test_certificate_dates_warn_at_30_days_and_fail_outside_validity(yearpki):
    cert, key = yearpki.client("center")

    def check(now):
        return doctorchecks.certificate("cert", cert, key, yearpki.ca, "client", now)
    assert [v.status for v in check(NOW)] == [PASS]
    [soon] = [v for v in check(NOW + datetime.timedelta(days=380)) if "expires in" in v.detail]
    assert soon.status == WARN and re.search(r"expires in (19|20) day", soon.detail)  # 400 - 380, made after NOW
    assert any(v.status == FAIL and "expired" in v.detail for v in check(NOW + datetime.timedelta(days=401)))
    assert any(v.status == FAIL and "valid only from" in v.detail for v in check(NOW - datetime.timedelta(days=1)))


def test_certificate_of_another_ca_wrong_use_or_wrong_key_fails(tmp_path, yearpki):
    cert, key = yearpki.client("center")
    other = make_lab_pki(tmp_path / "other", ["center"], days=400)
    [v] = doctorchecks.certificate("cert", cert, key, other.ca, "client", NOW)
    assert v.status == FAIL and "does not chain" in v.detail
    verdicts = doctorchecks.certificate("cert", yearpki.broker_cert, yearpki.broker_key, yearpki.ca, "client", NOW)
    assert [v.status for v in verdicts] == [FAIL] and "client extended key usage" in verdicts[0].detail
    verdicts = doctorchecks.certificate("cert", cert, other.client("center")[1], yearpki.ca, "client", NOW)
    assert verdicts[0].status == FAIL and "is not the key of" in verdicts[0].detail


# -- receivers, as the store knows them; the web console ----------------------------------------------------

def test_no_receiver_or_one_not_heard_recently_fails(tmp_path, yearpki):
    cfg = cfgmod.load(make_center(tmp_path / "c", yearpki, 1883))
    store = EventStore(cfg.store_url)
    [v] = doctorchecks.receivers(store.db, NOW.timestamp())
    assert v.status == FAIL and "no receiving service" in v.detail
    store.receiver_beat("rx-1", "connected", NOW.timestamp() - 60)
    [v] = doctorchecks.receivers(store.db, NOW.timestamp())
    assert v.status == FAIL and "not heard for 60 s" in v.detail
    store.receiver_beat("rx-1", "connected", NOW.timestamp() - 1)
    assert doctorchecks.receivers(store.db, NOW.timestamp())[0].status == PASS
    store.close()


def test_web_console_tls_files_checked_when_configured(tmp_path, yearpki):
    config = make_center(tmp_path / "c", yearpki, 1883, extra="")
    cfg = cfgmod.load(config)
    [v] = doctorchecks.web(cfg, NOW)
    assert v.status == PASS and "loopback only" in v.detail
    with config.open("a") as f:
        f.write(f'[web]\nlisten = "0.0.0.0:8443"\ncert = "{yearpki.broker_cert}"\nkey = "{tmp_path}/none.key"\n')
    cfg = cfgmod.load(config)
    [v] = doctorchecks.web(cfg, NOW)
    assert v.status == FAIL and "none.key" in v.detail
    text = config.read_text().replace(f"{tmp_path}/none.key", str(yearpki.broker_key))
    config.write_text(text + 'host = "localhost"\n')
    cfg = cfgmod.load(config)
    assert [v.status for v in doctorchecks.web(cfg, NOW)] == [PASS]

"""The fleet report: every home's device health at a glance for the center, sealed inside its status.

The center sees version, outbox, unacknowledged alarms, drivers down, open faults and the Pi's
own health in each online status, readable only with the center's key and only as this home's
(model bounds, seal/open, wrong topic/key/tampering refused). Collecting it must never cost the
heartbeat: fake sysfs files stand in for the Pi's, absent ones give None, a failing source costs
its field only. And a real daemon's heartbeat through the lab's Mosquitto carries one that opens.
"""

import base64
import json
import sys
import threading
from datetime import datetime, timedelta, timezone

import pytest

from agent import fleetreport
from agent.fleetreport import FleetReporter, OpenFaults
from base.errors import EnvelopeError
from base.keys import Identity, load_private, load_public
from protocol import envelope, padding, topics
from protocol.envelope import HEADER, LEGACY_VERSION
from protocol.events import Event
from protocol.fleet import open_report, seal_report
from protocol.kem import suite
from protocol.messages import MAX_COMPONENTS, MAX_REPORT_TEXT, FleetReport, StatusMessage, decode, encode
from protocol.presence import verify_status
from tests.support.fakes import FakeClock
from tests.support.lab import RawCenter, wait_for

HOME = "hem-0042"
TOPIC = topics.status(HOME)
NOW = datetime(2026, 1, 15, 3, 0, 0, 123000, tzinfo=timezone.utc)
QUEUES = {"alarm": {"depth": 1, "oldest_age_s": 4}, "event": {"depth": 7, "oldest_age_s": 3600},
          "telemetry": {"depth": 0}}


def full_report(**changes) -> FleetReport:
    fields = dict(home=HOME, time=NOW, version="0.1.0", outbox=QUEUES, unacked_alarms=1,
                  drivers_down=["mat:bedroom"], faults=["lock:front-door", "storage"], cpu_temp_c=51.2,
                  disk_free_bytes=3_000_000_000, under_voltage=False, under_voltage_seen=True, clock_synced=True,
                  cert_expires=datetime(2027, 3, 1, tzinfo=timezone.utc))
    return FleetReport(**{**fields, **changes})


@pytest.fixture(scope="module")
def keys():
    return {"device": Identity.generate(HOME), "center": Identity.generate("center"),
            "center_pq": Identity.generate("center", "mlkem768-x25519"), "other": Identity.generate("other")}


def device_lookup(identity):
    public = identity.sign.public_key()
    return lambda kid: public if kid == envelope.signer_kid(public) else None


def opened(keys, text: str, topic: str = TOPIC, center: str = "center") -> FleetReport:
    return open_report(text, topic, [keys[center].kem], device_lookup(keys["device"]))


# -- the model ---------------------------------------------------------------------------------
def test_a_report_survives_encoding_exactly_and_omits_what_is_unknown():
    report = full_report()
    assert decode(encode(report), FleetReport) == report
    bare = FleetReport(home=HOME, time=NOW)
    assert json.loads(encode(bare)) == {"home": HOME, "t": "fleet_report", "time": "2026-01-15T03:00:00.123Z", "v": 1}
    assert decode(encode(bare), FleetReport) == bare


@pytest.mark.parametrize("field, value", [
    ("cpu_temp_c", 999.9), ("cpu_temp_c", float("nan")), ("disk_free_bytes", -1), ("unacked_alarms", 2**40),
    ("outbox", {**QUEUES, "alarm": {"depth": -1}}), ("outbox", {"alarm": QUEUES["alarm"]}),
    ("outbox", {**QUEUES, "backlog": {"depth": 1}}),
    ("drivers_down", [f"mat:m{i}" for i in range(MAX_COMPONENTS + 1)]), ("faults", ["Mat:Bedroom"]),
    ("faults", ["storage", "storage"]), ("faults", ["mat:bedroom\n"]), ("faults", ["x" * 60]),
    ("version", "0.1 ; rm -rf"), ("version", ""), ("cert_expires", datetime(2027, 1, 1)),
    ("home", "Hem 42"), ("t", "status"), ("surprise", 1),
])
def test_out_of_bounds_or_malformed_reports_are_refused(field, value):
    with pytest.raises(ValueError):
        full_report(**{field: value})


@pytest.mark.parametrize("edit", [
    lambda d: d.update(clock_synced="true"), lambda d: d.update(unacked_alarms="3"), lambda d: d.update(v=2),
    lambda d: d["outbox"]["alarm"].update(depth=1.5), lambda d: d.update(cert_expires=1767225600),
])
def test_the_wire_form_is_parsed_strictly(edit):
    data = json.loads(encode(full_report()))
    edit(data)
    with pytest.raises(ValueError):
        decode(json.dumps(data).encode(), FleetReport)


def test_a_status_without_a_report_still_parses_and_a_malformed_report_field_is_refused():
    old = b'{"heartbeat_s":60,"home":"hem-0042","state":"online","t":"status","time":"2026-01-15T03:00:00.000Z","v":1}'
    assert decode(old, StatusMessage).report is None  # an older device
    base = json.loads(old)
    for bad in ("not base64!", "A" * (MAX_REPORT_TEXT + 4), "", 12):
        with pytest.raises(ValueError):
            decode(json.dumps({**base, "report": bad}).encode(), StatusMessage)


# -- seal and open -----------------------------------------------------------------------------
@pytest.mark.parametrize("center, size", [("center", 1024), ("center_pq", 2048)])
def test_a_sealed_report_opens_with_the_center_key_and_a_usual_one_is_the_smallest_envelope(keys, center, size):
    report = full_report()
    text = seal_report(report, TOPIC, keys["device"].sign, keys[center].kem.public)
    assert len(base64.b64decode(text)) == size  # one envelope size for every home (padding.py)
    assert opened(keys, text, center=center) == report


@pytest.mark.parametrize("center", ["center", "center_pq"])
def test_the_largest_report_the_model_allows_keeps_the_status_small(keys, center):
    names = [f"{'k' * 19}{i % 10}:{chr(97 + i)}{'n' * 31}" for i in range(MAX_COMPONENTS)]
    report = full_report(drivers_down=names, faults=names, version="9" * 64, disk_free_bytes=2**53)
    text = seal_report(report, TOPIC, keys["device"].sign, keys[center].kem.public)
    assert len(base64.b64decode(text)) <= 4 * padding.KiB
    status = StatusMessage(home=HOME, state="online", time=NOW, heartbeat_s=60, challenge="0" * 32,
                           clock_synced=True, storage="ok", free_bytes=2**53, report=text)
    assert decode(encode(status), StatusMessage).report == text


def test_a_report_opens_for_no_other_home_and_on_no_other_topic(keys):
    text = seal_report(full_report(), TOPIC, keys["device"].sign, keys["center"].kem.public)
    with pytest.raises(EnvelopeError):
        opened(keys, text, topics.status("hem-0043"))  # moved into another home's status
    with pytest.raises(ValueError, match="status topic"):
        opened(keys, text, topics.up(HOME, "event"))
    with pytest.raises(ValueError, match="cannot go on"):
        seal_report(full_report(), topics.status("hem-0043"), keys["device"].sign, keys["center"].kem.public)


def test_a_report_for_the_wrong_key_or_signer_or_tampered_does_not_open(keys):
    text = seal_report(full_report(), TOPIC, keys["device"].sign, keys["center"].kem.public)
    with pytest.raises(EnvelopeError, match="do not hold"):
        open_report(text, TOPIC, [keys["other"].kem], device_lookup(keys["device"]))
    with pytest.raises(EnvelopeError, match="unknown key"):
        open_report(text, TOPIC, [keys["center"].kem], device_lookup(keys["other"]))
    forged = seal_report(full_report(), TOPIC, keys["other"].sign, keys["center"].kem.public)
    with pytest.raises(EnvelopeError):
        opened(keys, forged)
    raw = bytearray(base64.b64decode(text))
    for at in (0, 5, 40, len(raw) // 2, len(raw) - 1):
        tampered = raw.copy()
        tampered[at] ^= 0x01
        with pytest.raises(EnvelopeError):
            opened(keys, base64.b64encode(bytes(tampered)).decode())
    with pytest.raises(EnvelopeError):
        opened(keys, base64.b64encode(bytes(raw[:-16])).decode())  # truncated: not a padded size
    for junk in ("%%%%", text[:-1], text + "\n", "A" * (MAX_REPORT_TEXT + 4), None):
        with pytest.raises(ValueError):
            opened(keys, junk)


def test_what_the_envelope_carries_must_be_this_homes_report_in_a_padded_envelope(keys):
    sign, center = keys["device"].sign, keys["center"].kem.public

    def sealed(body: bytes) -> str:
        return base64.b64encode(envelope.seal(body, TOPIC, sign, center)).decode()

    other_home = encode(full_report(home="hem-0043"))
    with pytest.raises(ValueError, match="published on 'hem-0042'"):
        opened(keys, sealed(other_home))
    status = encode(StatusMessage(home=HOME, state="online", time=NOW, heartbeat_s=60))
    with pytest.raises(ValueError):
        opened(keys, sealed(status))  # a signed status is no report
    recipient = keys["center"].kem
    header = HEADER.pack(LEGACY_VERSION, recipient.suite_id, recipient.public.kid)
    info = b"trygg/v1 seal\x00" + TOPIC.encode() + b"\x00" + header
    legacy = header + suite(recipient.suite_id).encrypt(envelope.sign(encode(full_report()), TOPIC, sign),
                                                        recipient.public.hpke_key, info=info)
    with pytest.raises(EnvelopeError, match="version 1"):
        opened(keys, base64.b64encode(legacy).decode())


# -- collectors ----------------------------------------------------------------------------------
def test_cpu_temperature_from_sysfs_and_none_without_it(tmp_path):
    temp = tmp_path / "temp"
    temp.write_text("48312\n")
    assert fleetreport.cpu_temp_c(temp) == 48.3
    temp.write_text("hot\n")
    assert fleetreport.cpu_temp_c(temp) is None
    assert fleetreport.cpu_temp_c(tmp_path / "absent") is None


@pytest.mark.parametrize("text, expected", [
    ("0\n", (False, False)), ("50005\n", (True, True)), ("0x50000\n", (False, True)), ("1\n", (True, False)),
    ("garbage\n", (None, None)),
])
def test_under_voltage_from_the_firmwares_throttled_file(tmp_path, text, expected):
    path = tmp_path / "get_throttled"
    path.write_text(text)
    assert fleetreport.under_voltage(fleetreport.throttled_from_sysfs(path)) == expected


def test_under_voltage_is_unknown_without_the_file_or_vcgencmd(tmp_path):
    assert fleetreport.throttled_from_sysfs(tmp_path / "absent") is None
    assert fleetreport.under_voltage(None) == (None, None)
    assert fleetreport.throttled_from_vcgencmd((str(tmp_path / "no-vcgencmd"), "get_throttled")) is None


def test_vcgencmd_is_read_and_its_failures_give_none():
    say = lambda text, code=0: (sys.executable, "-c", f"print({text!r}); raise SystemExit({code})")
    assert fleetreport.throttled_from_vcgencmd(say("throttled=0x50005")) == 0x50005
    assert fleetreport.throttled_from_vcgencmd(say("throttled=0x50005", 1)) is None
    assert fleetreport.throttled_from_vcgencmd(say("VCHI initialization failed")) is None
    hang = (sys.executable, "-c", "import time; time.sleep(10)")
    assert fleetreport.throttled_from_vcgencmd(hang, timeout=0.3) is None


def test_certificate_expiry_is_read_from_the_client_certificate(pki):
    cert, _ = pki.client("center")
    expires = fleetreport.cert_expiry(cert)
    assert expires.tzinfo is not None and expires > datetime.now(timezone.utc)


def test_open_faults_follow_fault_and_fault_cleared_events():
    faults = OpenFaults()
    for event in (Event("event", "fault", {"component": "storage", "detail": "disk full"}),
                  Event("event", "fault", {"component": "mat:bedroom", "mat": "bedroom"}),
                  Event("event", "lock_fault", {"lock": "front-door", "detail": "bolt"}),
                  Event("event", "fault", {"component": "Not A Name"}), Event("event", "fault", {}),
                  Event("alarm", "fall", {"component": "mat:hall"}),
                  Event("event", "fault_cleared", {"component": "storage"})):
        faults.note(event)
    assert faults.names() == ["lock:front-door", "mat:bedroom"]
    faults.note(Event("event", "fault_cleared", {"component": "lock:front-door"}))
    assert faults.names() == ["mat:bedroom"]


# -- the reporter ---------------------------------------------------------------------------------
class FakeOutbox:
    def __init__(self) -> None:
        self.broken = False

    def stats(self) -> dict:
        if self.broken:
            raise OSError("database is locked")
        return {"classes": {"alarm": {"depth": 2, "oldest_age_s": 7.8}, "event": {"depth": 5, "oldest_age_s": 60.0},
                            "telemetry": {"depth": 0, "oldest_age_s": None},
                            "test": {"depth": 1, "oldest_age_s": 3.0}}}

    def disk(self) -> dict:
        return {"free_bytes": 123_456_789}


@pytest.fixture
def reporter(tmp_path, keys, pki):
    sysfs = tmp_path / "sys"
    sysfs.mkdir()
    (sysfs / "temp").write_text("61250\n")
    (sysfs / "get_throttled").write_text("50000\n")
    faults = OpenFaults()
    faults.note(Event("event", "fault", {"component": "camera"}))
    health = {"bedroom": {"kind": "mat", "running": False}, "front-door": {"kind": "lock", "running": True}}
    return FleetReporter(HOME, keys["device"].sign, lambda: keys["center"].kem.public, FakeClock(NOW, synced=False),
                         outbox=FakeOutbox(), drivers=lambda: health, held_alarms=lambda: 1, faults=faults,
                         cert=pki.client("center")[0], thermal=sysfs / "temp", throttled=sysfs / "get_throttled",
                         vcgencmd=(str(tmp_path / "no-vcgencmd"),))


def test_the_reporter_collects_every_source(reporter, pki):
    report = reporter.collect()
    assert report.home == HOME and report.time == NOW
    assert report.version == fleetreport.software_version() and report.version
    assert report.outbox.alarm.depth == 2 and report.outbox.alarm.oldest_age_s == 7
    assert report.outbox.telemetry.oldest_age_s is None and report.outbox.test.depth == 1
    assert report.unacked_alarms == 3  # two stored, one held in memory
    assert report.drivers_down == ["mat:bedroom"] and report.faults == ["camera"]
    assert (report.cpu_temp_c, report.disk_free_bytes) == (61.2, 123_456_789)
    assert (report.under_voltage, report.under_voltage_seen, report.clock_synced) == (False, True, False)
    assert report.cert_expires == fleetreport.cert_expiry(pki.client("center")[0])


def test_a_failing_or_absent_source_costs_only_its_own_field(reporter, keys, caplog):
    reporter.outbox.broken = True
    reporter.thermal.write_text("999999\n")  # 999.9 °C: a broken sensor, outside the model's bounds
    reporter.throttled.unlink()  # no firmware file and no vcgencmd
    reporter.refresh_throttled()
    reporter.cert = reporter.cert.with_name("absent.crt")
    reporter.reload()
    report = reporter.collect()
    assert (report.outbox, report.unacked_alarms, report.cpu_temp_c, report.cert_expires) == (None,) * 4
    assert (report.under_voltage, report.under_voltage_seen) == (None, None)
    assert report.drivers_down == ["mat:bedroom"] and report.disk_free_bytes == 123_456_789
    assert opened(keys, reporter.sealed()) == report
    assert "outbox unknown" in caplog.text and "cpu_temp_c out of bounds" in caplog.text


def test_vcgencmd_answers_where_the_kernel_has_no_throttled_file(reporter, tmp_path):
    reporter.throttled = tmp_path / "absent"
    reporter.vcgencmd = (sys.executable, "-c", "print('throttled=0x1')")
    assert reporter.collect().under_voltage is None  # not asked yet: housekeeping asks
    reporter.refresh_throttled()
    report = reporter.collect()
    assert (report.under_voltage, report.under_voltage_seen) == (True, False)


def test_no_report_rather_than_no_heartbeat_when_it_cannot_be_sealed(reporter, caplog):
    def no_key():
        raise KeyError("center key gone")

    reporter.center = no_key
    assert reporter.sealed() is None
    assert "heartbeat goes without it" in caplog.text


def test_a_report_goes_when_it_matters_and_at_least_every_fifteen_minutes(reporter, keys):
    assert reporter.sealed() is not None  # the first heartbeat
    assert reporter.sealed() is None  # nothing changed: the heartbeat stays small
    reporter.faults.note(Event("event", "fault", {"component": "mat:bedroom"}))
    assert opened(keys, reporter.sealed()).faults == ["camera", "mat:bedroom"]  # a new fault: at once
    assert reporter.sealed() is None
    reporter.clock.advance(fleetreport.REPORT_EVERY_S)
    assert reporter.sealed() is not None


# -- the real heartbeat ----------------------------------------------------------------------------
def test_a_real_heartbeat_carries_a_report_the_center_opens(lab, run_daemon):
    home = lab.home("hem-fleet")
    daemon = run_daemon(home)
    daemon.inject(Event("alarm", "help", {"simulated": True}))  # no receiver runs: it stays unacknowledged
    daemon.inject(Event("event", "fault", {"component": "camera", "detail": "no frames"}))
    statuses: list[bytes] = []
    got = threading.Event()
    center = RawCenter(lab)
    try:
        center.client.on_message = lambda c, u, m: (statuses.append(bytes(m.payload)), got.set())
        center.client.subscribe(topics.status(home.id), qos=1)
        got.wait(10)
        daemon.uplink.refresh_presence()
        device = load_public(home.dir / "device.pub")
        opening = [load_private(lab.root / "center" / "center.key").kem]
        lookup = lambda kid: device.sign if kid == envelope.signer_kid(device.sign) else None

        def alarm_reported() -> FleetReport | None:
            for payload in reversed(statuses):
                status = verify_status(payload, topics.status(home.id), home.id, lookup)
                if status.state == "online" and status.report:
                    report = open_report(status.report, topics.status(home.id), opening, lookup)
                    if report.unacked_alarms:
                        return report
            return None

        report = wait_for(alarm_reported, 15, "a heartbeat reporting the unacknowledged alarm")
    finally:
        center.close()
    assert report.home == home.id and report.version == fleetreport.software_version()
    assert report.outbox.alarm.depth == 1 and report.unacked_alarms == 1 and report.faults == ["camera"]
    waiting = daemon.outbox.stats()["classes"]
    assert 1 <= report.outbox.event.depth <= waiting["event"]["depth"]  # start-up events, none acknowledged
    assert report.disk_free_bytes > 0 and report.clock_synced is not None
    assert report.cert_expires == fleetreport.cert_expiry(lab.pki.client(home.id)[0])
    assert report.time <= datetime.now(timezone.utc) + timedelta(seconds=1)

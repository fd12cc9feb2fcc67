"""The look-in's hardware side on gpiozero MockFactory pins: the indicator and the shutter (or the
camera servo) are on only while the camera is in use, a failing camera is reported once and
cleared, and a picture too large for one message gets a lower JPEG quality or a clear failure.

The camera is the synthetic backend, run in this process (wrapped to see the pins at the moment
of capture) except where the test is about the capture process itself; the link is a small
stand-in that records what would be published: the real path through the broker is
tests/test_lookin_e2e.py.
"""

from dataclasses import dataclass
from datetime import datetime, timezone

import pytest

import agent.lookin as lookin_module
from agent.commands import ActionFailed
from agent.config import DeviceConfig
from agent.devices import pin_factory
from agent.grant import Grant
from base.keys import Identity, PublicIdentity
from agent.lookin import LookIn, capture_in_process
from protocol import envelope, topics
from protocol.ids import new_id
from protocol.messages import CommandMessage, LookinMessage, decode
from agent.trustdb import TrustDB
from drivers.camera import CameraError, SyntheticCamera
from drivers.capture import CaptureError, pictures, read_pictures
from tests.support.fakes import FakeClock

BROKER = {"host": "x", "ca": "a", "cert": "b", "key": "c"}
NOW = datetime(2026, 11, 24, 22, 30, tzinfo=timezone.utc)


@dataclass
class Staff:
    name: str
    role: str
    public: PublicIdentity


class Link:
    """Records what send_now() is given, as the uplink would publish it."""

    def __init__(self) -> None:
        self.link, self.sent = "connected", []

    def send_now(self, topic: str, payload: bytes, timeout: float) -> str | None:
        self.sent.append((topic, payload))
        return None


class WatchedCamera:
    """The synthetic camera in this process, noting the outputs' states when it captures.
    Installed as the look-in's capture function."""

    def __init__(self, look: "LookIn", fail: bool = False) -> None:
        self.look, self.fail, self.seen = look, fail, []

    def __call__(self, request: dict) -> list[bytes]:
        return pictures(request, camera=self)

    def capture(self, count):
        if self.fail:
            raise CameraError("camera 0 cannot be opened (is it connected?)")
        look = self.look
        self.seen.append((look.indicator.value, look.shutter.value, look.servo.angle))
        return SyntheticCamera(320, 180).capture(count)

    def close(self):
        pass


def make(tmp_path, **lookin):
    cfg = DeviceConfig.model_validate({"home": {"id": "h1"}, "broker": BROKER, "lookin": {
        "camera": "synthetic", "width": 320, "height": 180, "windows": [{"start": "00:00", "end": "00:00"}],
        "indicator": {"pin": 7}, "shutter": {"pin": 8}, "servo": {"pin": 11}, "shutter_open_s": 0.2, **lookin}})
    clock = FakeClock(NOW)
    events = []
    grant = Grant(cfg.lookin, cfg.home.timezone, clock, TrustDB(tmp_path / "trust.db"), cfg.roles)
    look = LookIn("h1", Identity.generate("h1"), grant, Link(), events.append, clock, pin_factory("mock"))
    look.open()
    return look, events, clock


def command() -> CommandMessage:
    return CommandMessage(id=new_id(), home="h1", action="lookin", issued=NOW, expires=NOW)


def test_indicator_shutter_and_servo_are_on_only_while_the_camera_is_in_use(tmp_path):
    look, events, clock = make(tmp_path)
    camera = look.capture = WatchedCamera(look)
    assert (look.indicator.value, look.shutter.value, look.servo.angle) == (0, 0, -90)
    staff_key = Identity.generate("anna")
    before = clock.mono
    detail = look(command(), Staff("anna", "night-staff", staff_key.public()))
    assert camera.seen == [(1, 1, 0)]
    assert clock.mono - before >= 0.2  # the shutter had time to open before the capture
    assert (look.indicator.value, look.shutter.value, look.servo.angle) == (0, 0, -90)
    assert detail["left"] == 1 and detail["frames"] == 1
    (topic, payload), = look.uplink.sent
    assert topic == topics.lookin("h1")
    opened = envelope.open_sealed(payload, topic, [staff_key.kem], lambda kid: look.device.sign.public_key())
    picture = decode(opened.body, LookinMessage)
    assert (picture.staff, picture.width, picture.height, picture.privacy) == ("anna", 320, 180, "blur")
    look.stop()


def test_a_failing_camera_fails_the_look_in_reports_a_fault_once_and_its_recovery(tmp_path):
    look, events, _ = make(tmp_path)
    staff = Staff("anna", "night-staff", Identity.generate("anna").public())
    look.capture = WatchedCamera(look, fail=True)
    for _ in range(2):
        with pytest.raises(ActionFailed, match="camera: camera 0 cannot be opened"):
            look(command(), staff)
    assert [(e.kind, e.body["component"]) for e in events] == [("fault", "camera")]
    assert (look.indicator.value, look.shutter.value, look.servo.angle) == (0, 0, -90)
    assert look.grant.used() == 0  # nothing was seen: the resident's count is untouched
    look.capture = WatchedCamera(look)
    look(command(), staff)
    assert [e.kind for e in events] == ["fault", "fault_cleared"]
    assert look.status()["camera_faulted"] is False
    look.stop()


def test_a_picture_too_large_for_one_message_is_sent_at_a_lower_quality_or_not_at_all(tmp_path, monkeypatch):
    look, _, _ = make(tmp_path, privacy="none", max_per_night=10)
    look.capture = WatchedCamera(look)
    staff_key = Identity.generate("anna")
    staff = Staff("anna", "night-staff", staff_key.public())

    def picture_bytes() -> int:
        """The picture message inside the envelope (the envelope itself is padded to a fixed size)."""
        topic, payload = look.uplink.sent[-1]
        return len(envelope.open_sealed(payload, topic, [staff_key.kem], lambda kid: look.device.sign.public_key()).body)

    look(command(), staff)
    full = picture_bytes()
    monkeypatch.setattr(lookin_module, "MAX_LOOKIN_JSON", full * 3 // 4 + 4096)
    look(command(), staff)
    assert picture_bytes() < full * 3 // 4
    monkeypatch.setattr(lookin_module, "MAX_LOOKIN_JSON", 5000)
    with pytest.raises(ActionFailed, match="do not fit one message even at JPEG quality 25"):
        look(command(), staff)
    assert len(look.uplink.sent) == 2 and look.grant.used() == 2  # what nobody could see is not counted
    assert look.status()["camera_faulted"] is False  # a config matter, not a broken camera
    look.stop()


REQUEST = {"camera": "synthetic", "device": 0, "width": 640, "height": 360, "burst": 2, "privacy": "blur",
           "max_bytes": 500_000}


def test_the_capture_process_returns_jpegs_over_the_pipe():
    jpegs = capture_in_process(REQUEST)
    assert len(jpegs) == 2 and all(j.startswith(b"\xff\xd8") and j.endswith(b"\xff\xd9") for j in jpegs)


def test_a_camera_that_cannot_be_opened_is_a_camera_error_from_the_capture_process():
    with pytest.raises(CaptureError, match="camera: camera '/dev/trygg-no-such-camera' cannot be opened"):
        capture_in_process({**REQUEST, "camera": "opencv", "device": "/dev/trygg-no-such-camera"})


def test_a_hung_camera_is_stopped_and_reported():
    with pytest.raises(CaptureError, match="no picture within 0.01 s"):
        capture_in_process(REQUEST, timeout=0.01)


def test_a_cut_picture_stream_is_refused():
    with pytest.raises(ValueError, match="cut short"):
        read_pictures(b"\x00\x00\x01\x00" + b"\xff" * 10)


def test_the_servo_pin_is_checked_like_any_other():
    with pytest.raises(ValueError, match="lookin.servo: GPIO17 is already used by locks.front-door.relay"):
        DeviceConfig.model_validate({"home": {"id": "h1"}, "broker": BROKER,
                                     "lookin": {"camera": "synthetic", "servo": {"pin": 17}}})

"""A look-in: the signed `lookin` command's action, from the grant check to a sealed picture.

Policy has already checked the signature, freshness and that the role may give `lookin` at all.
Here: the resident's grant (hours, role, count left tonight), then a live link (a look-in is
for now: with the link down it is refused, never queued), then the indicator lights and the
shutter opens while a short-lived process (drivers/capture.py) opens the camera, captures,
privacy-filters and JPEG-encodes in memory and exits; the JPEGs come back over a pipe, are
sealed to the requesting staff member's own key and published once on trygg/v1/<home>/lookin.
Nothing is written to disk: not the frames, not the JPEGs, not the sealed message (it goes past
the outbox, uplink.send_now). A camera that hangs or crashes costs that process, not the daemon. Every look-in
counts in trust.db, refused or done (done from the moment a sealed picture is ready to go); the
command itself is audited by commands.py.
"""

import base64
import json
import logging
import subprocess
import sys
import time

from drivers.capture import CaptureError, TooLarge, read_pictures

from .commands import ActionFailed, ActionRefused
from .devices import pwm_factory
from protocol.events import Event
from .grant import Grant
from base.keys import Identity
from protocol import envelope, topics
from protocol.messages import MAX_LOOKIN_JSON, CommandMessage, LookinMessage, encode
from protocol.refusals import Refusal

log = logging.getLogger(__name__)
SEND_TIMEOUT_S = 10.0
CAPTURE_TIMEOUT_S = 30.0  # a camera that has not answered by then is not going to


def capture_in_process(request: dict, timeout: float = CAPTURE_TIMEOUT_S) -> list[bytes]:
    """Run drivers/capture.py for one look-in: its JPEGs, or CaptureError (TooLarge) with its reason.
    A hang, a crash or a garbled answer is the camera's fault as far as staff are concerned."""
    try:
        done = subprocess.run([sys.executable, "-m", "drivers.capture"], input=json.dumps(request).encode() + b"\n",
                              capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise CaptureError(f"camera: no picture within {timeout:g} s (the capture was stopped)") from None
    reason = (done.stderr.decode(errors="replace").strip().splitlines() or ["no reason given"])[-1][:300]
    if done.returncode == 3:
        raise TooLarge(reason)
    if done.returncode != 0:
        raise CaptureError(reason if done.returncode == 2 else f"camera: capture process failed "
                                                               f"(exit {done.returncode}): {reason}")
    try:
        return read_pictures(done.stdout)
    except ValueError as exc:
        raise CaptureError(f"camera: capture process: {exc}") from None


class LookIn:
    def __init__(self, home: str, device: Identity, grant: Grant, uplink, emit, clock, pin_factory=None,
                 capture=capture_in_process) -> None:
        self.home, self.device, self.grant, self.uplink = home, device, grant, uplink
        self.emit, self.clock, self.pin_factory = emit, clock, pin_factory
        self.capture = capture
        self.camera_faulted = False
        self.indicator = self.shutter = self.servo = None
        self.looking = False  # for tests and status: the camera is in use right now

    # -- lifecycle: the indicator, shutter and servo outputs are held while the daemon runs -------
    def open(self) -> None:
        from gpiozero import AngularServo, OutputDevice

        cfg = self.grant.base
        for name in ("indicator", "shutter"):
            wiring = getattr(cfg, name)
            if wiring is not None:
                setattr(self, name, OutputDevice(wiring.pin, active_high=wiring.active == "high", initial_value=False,
                                                 pin_factory=self.pin_factory))
        if cfg.servo is not None:
            self.servo = AngularServo(cfg.servo.pin, initial_angle=cfg.servo.closed_angle, min_angle=-90, max_angle=90,
                                      pin_factory=pwm_factory(self.pin_factory))

    def stop(self) -> None:
        self._switch(False)
        for name in ("indicator", "shutter", "servo"):
            device = getattr(self, name)
            if device is not None:
                device.close()
                setattr(self, name, None)

    # -- the action ---------------------------------------------------------------------------
    def __call__(self, cmd: CommandMessage, staff) -> dict:
        cfg = self.grant.cfg
        why_not = self.grant.refusal(staff.role, cfg)
        if why_not is None and self.uplink.link != "connected":
            why_not = Refusal("link_down", "the home's link is down: a look-in is not queued (go in person if one is due)")
        if why_not:
            self._count("refused")
            raise ActionRefused(why_not)
        started = time.monotonic()
        payload = self._seal(cmd, staff, cfg, self._capture(cfg))
        self._count("used")  # from here on someone may see it
        sealed_ms = (time.monotonic() - started) * 1000
        error = self.uplink.send_now(topics.lookin(self.home), payload, SEND_TIMEOUT_S)
        if error:
            raise ActionFailed(f"the picture was not delivered: {error}", "not_delivered")
        return {"frames": cfg.burst, "privacy": cfg.privacy, "left": self.grant.left(cfg), "bytes": len(payload),
                "capture_ms": round(sealed_ms, 1)}

    def _count(self, what: str) -> None:
        with self.grant.trust.write() as conn:
            self.grant.count(conn, what)

    def _capture(self, cfg) -> list[bytes]:
        """Indicator on and shutter open only while the camera is in use; its JPEGs."""
        request = {"camera": cfg.camera, "device": cfg.device, "width": cfg.width, "height": cfg.height,
                   "burst": cfg.burst, "privacy": cfg.privacy, "max_bytes": (MAX_LOOKIN_JSON - 4096) * 3 // 4}
        self.looking = True
        self._switch(True)
        try:
            if (self.shutter is not None or self.servo is not None) and cfg.shutter_open_s:
                self.clock.sleep(cfg.shutter_open_s)  # let the shutter or servo move out of the way
            jpegs = self.capture(request)
        except CaptureError as exc:
            if not isinstance(exc, TooLarge):
                self._camera_fault(str(exc))
            raise ActionFailed(str(exc), "camera") from None
        finally:
            self._switch(False)
            self.looking = False
        if self.camera_faulted:
            self.camera_faulted = False
            self.emit(Event("event", "fault_cleared", {"component": "camera"}))
        return jpegs

    def _switch(self, on: bool) -> None:
        for device in (self.indicator, self.shutter):
            if device is not None:
                device.value = on
        if self.servo is not None:
            servo = self.grant.base.servo
            self.servo.angle = servo.open_angle if on else servo.closed_angle

    def _camera_fault(self, detail: str) -> None:
        log.warning("look-in: camera failed: %s", detail)
        if not self.camera_faulted:
            self.camera_faulted = True
            self.emit(Event("event", "fault", {"component": "camera", "detail": detail[:200]}))

    def _seal(self, cmd: CommandMessage, staff, cfg, jpegs: list[bytes]) -> bytes:
        message = LookinMessage(home=self.home, command=cmd.id, staff=staff.name, time=self.clock.now(),
                                privacy=cfg.privacy, width=cfg.width, height=cfg.height,
                                frames=[base64.b64encode(j).decode() for j in jpegs])
        return envelope.seal(encode(message), topics.lookin(self.home), self.device.sign, staff.public.kem)

    def status(self) -> dict:
        return {**self.grant.status(), "camera_faulted": self.camera_faulted, "in_use": self.looking}

"""A look-in: the signed `lookin` command's action, from the grant check to a sealed picture.

Policy has already checked the signature, freshness and that the role may give `lookin` at all.
Here: the resident's grant (hours, role, count left tonight), then a live link (a look-in is
for now: with the link down it is refused, never queued), then the indicator lights and the
shutter opens, the camera is opened for the capture and closed right after, the frames are
privacy-filtered and JPEG-encoded in memory, sealed to the requesting staff member's own key
and published once on trygg/v1/<home>/lookin. Nothing is written to disk: not the frames, not
the JPEGs, not the sealed message (it goes past the outbox, uplink.send_now). Every look-in
counts, granted or refused, in trust.db; the command itself is audited by commands.py.
"""

import base64
import logging
import time

from drivers import privacy
from drivers.camera import CameraError, open_camera

from .commands import ActionFailed, ActionRefused
from .events import Event
from .grant import Grant
from .keys import Identity
from .protocol import envelope, topics
from .protocol.messages import MAX_LOOKIN_JSON, CommandMessage, LookinMessage, encode

log = logging.getLogger(__name__)
JPEG_QUALITIES = (80, 60, 40, 25)  # lower until the sealed message fits the envelope limit
SEND_TIMEOUT_S = 10.0


class LookIn:
    def __init__(self, home: str, device: Identity, grant: Grant, uplink, emit, clock, pin_factory=None,
                 camera_factory=open_camera) -> None:
        self.home, self.device, self.grant, self.uplink = home, device, grant, uplink
        self.emit, self.clock, self.pin_factory = emit, clock, pin_factory
        self.camera_factory = camera_factory
        self.camera_faulted = False
        self.indicator = self.shutter = None
        self.looking = False  # for tests and status: the camera is in use right now

    # -- lifecycle: the indicator and shutter outputs are held while the daemon runs -------------
    def open(self) -> None:
        from gpiozero import OutputDevice

        cfg = self.grant.base
        for name in ("indicator", "shutter"):
            wiring = getattr(cfg, name)
            if wiring is not None and cfg.camera != "none":
                setattr(self, name, OutputDevice(wiring.pin, active_high=wiring.active == "high", initial_value=False,
                                                 pin_factory=self.pin_factory))

    def stop(self) -> None:
        for name in ("indicator", "shutter"):
            device = getattr(self, name)
            if device is not None:
                device.off()
                device.close()
                setattr(self, name, None)

    # -- the action ---------------------------------------------------------------------------
    def __call__(self, cmd: CommandMessage, staff) -> dict:
        cfg = self.grant.cfg
        why_not = self.grant.refusal(staff.role, cfg)
        if why_not is None and self.uplink.link != "connected":
            why_not = "the home's link is down: a look-in is not queued (go in person if one is due)"
        if why_not:
            self._count("refused")
            raise ActionRefused(why_not)
        started = time.monotonic()
        frames = self._capture(cfg)
        self._count("used")
        try:
            payload = self._seal(cmd, staff, cfg, frames)
        finally:
            del frames  # the raw pictures leave memory before the network wait
        sealed_ms = (time.monotonic() - started) * 1000
        error = self.uplink.send_now(topics.lookin(self.home), payload, SEND_TIMEOUT_S)
        if error:
            raise ActionFailed(f"the picture was not delivered: {error}")
        return {"frames": cfg.burst, "privacy": cfg.privacy, "left": self.grant.left(cfg), "bytes": len(payload),
                "capture_ms": round(sealed_ms, 1)}

    def _count(self, what: str) -> None:
        with self.grant.trust.write() as conn:
            self.grant.count(conn, what)

    def _capture(self, cfg) -> list:
        """Indicator on and shutter open only while the camera is in use; the camera closes after."""
        self.looking = True
        self._switch(True)
        camera = None
        try:
            if self.shutter is not None and cfg.shutter_open_s:
                self.clock.sleep(cfg.shutter_open_s)  # let the shutter or servo move out of the way
            camera = self.camera_factory(cfg.camera, cfg.width, cfg.height, cfg.device)
            frames = camera.capture(cfg.burst).frames
        except CameraError as exc:
            self._camera_fault(str(exc))
            raise ActionFailed(f"camera: {exc}") from None
        finally:
            if camera is not None:
                camera.close()
            self._switch(False)
            self.looking = False
        if self.camera_faulted:
            self.camera_faulted = False
            self.emit(Event("event", "fault_cleared", {"component": "camera"}))
        return frames

    def _switch(self, on: bool) -> None:
        for device in (self.indicator, self.shutter):
            if device is not None:
                device.value = on

    def _camera_fault(self, detail: str) -> None:
        log.warning("look-in: camera failed: %s", detail)
        if not self.camera_faulted:
            self.camera_faulted = True
            self.emit(Event("event", "fault", {"component": "camera", "detail": detail[:200]}))

    def _seal(self, cmd: CommandMessage, staff, cfg, frames: list) -> bytes:
        """Filter, encode and seal; lower the JPEG quality until it fits one envelope."""
        filtered = [privacy.apply(frame, cfg.privacy) for frame in frames]
        height, width = filtered[0].shape[:2]
        topic = topics.lookin(self.home)
        for quality in JPEG_QUALITIES:
            pictures = [base64.b64encode(privacy.to_jpeg(f, quality)).decode() for f in filtered]
            if sum(map(len, pictures)) + 4096 > MAX_LOOKIN_JSON:
                continue
            message = LookinMessage(home=self.home, command=cmd.id, staff=staff.name, time=self.clock.now(),
                                    privacy=cfg.privacy, width=width, height=height, frames=pictures)
            return envelope.seal(encode(message), topic, self.device.sign, staff.public.kem)
        raise ActionFailed(f"the pictures do not fit one message even at JPEG quality {JPEG_QUALITIES[-1]}; "
                           "lower [lookin] width/height or burst")

    def status(self) -> dict:
        return {**self.grant.status(), "camera_faulted": self.camera_faulted, "in_use": self.looking}

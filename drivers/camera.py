"""Camera backends for night look-ins: opened for one look-in, closed right after.

- `synthetic`: generated frames of a dim bedroom (a bed, and a resident in bed, on the floor or
  away), with sensor noise and fine texture, for tests and the demo. Knows where the person is,
  so tests can check what a privacy filter leaves visible.
- `opencv`: a USB camera through OpenCV's VideoCapture.
- `picamera2`: the Raspberry Pi camera; imported only when used (it comes from the OS packages).
Every backend returns BGR uint8 frames (OpenCV's layout) and never writes a frame anywhere.
"""

from dataclasses import dataclass
from protocol.errors import TryggError

POSES = ("in_bed", "on_floor", "away")


class CameraError(TryggError, RuntimeError):
    """The camera could not be opened or gave no picture; the message says what to check."""


@dataclass
class Capture:
    frames: list  # numpy arrays, H x W x 3, BGR uint8
    person_box: tuple[int, int, int, int] | None = None  # synthetic only: x, y, w, h of the person


class SyntheticCamera:
    """A generated bedroom. `pose` says where the resident is; `seed` makes the noise repeatable."""

    def __init__(self, width: int = 1280, height: int = 720, pose: str = "in_bed", seed: int = 0) -> None:
        if pose not in POSES:
            raise CameraError(f"synthetic pose must be one of {', '.join(POSES)}, got {pose!r}")
        self.width, self.height, self.pose, self.seed = width, height, pose, seed

    def capture(self, count: int = 1) -> Capture:
        import numpy as np
        import cv2

        w, h = self.width, self.height
        rng = np.random.default_rng(self.seed)
        frames = []
        box = None
        for i in range(count):
            img = np.full((h, w, 3), (38, 34, 30), np.uint8)  # a dim room (night, IR-ish)
            cv2.rectangle(img, (0, int(h * 0.72)), (w, h), (52, 48, 44), -1)  # floor
            bed = (int(w * 0.08), int(h * 0.38), int(w * 0.55), int(h * 0.70))
            cv2.rectangle(img, bed[:2], bed[2:], (70, 66, 62), -1)
            cv2.rectangle(img, (bed[0], bed[1] - int(h * 0.12)), (bed[0] + int(w * 0.03), bed[3]), (60, 56, 52), -1)
            if self.pose == "in_bed":
                box = _person(img, (int(w * 0.14), int(h * 0.42)), (int(w * 0.38), int(h * 0.16)), rng)
            elif self.pose == "on_floor":
                box = _person(img, (int(w * 0.55), int(h * 0.78)), (int(w * 0.36), int(h * 0.14)), rng)
            noise = rng.normal(0, 9, img.shape)  # sensor noise: fine detail a filter must remove
            frames.append(np.clip(img + noise, 0, 255).astype(np.uint8))
        return Capture(frames, box)

    def close(self) -> None:
        pass


def _person(img, origin, size, rng) -> tuple[int, int, int, int]:
    """A lying person: torso, legs and head, bright (warm) against the room, with a textured
    face and a patterned blanket, the detail that must not survive a privacy filter."""
    import cv2

    x, y = origin
    w, h = size
    cv2.ellipse(img, (x + int(w * 0.55), y + h // 2), (int(w * 0.45), h // 2), 0, 0, 360, (150, 160, 185), -1)
    head_c, head_r = (x + int(w * 0.08), y + h // 2), int(h * 0.45)
    cv2.circle(img, head_c, head_r, (170, 185, 215), -1)
    for _ in range(40):  # "facial" detail: small dark and bright marks inside the head
        dx, dy = rng.integers(-head_r // 2, head_r // 2, 2)
        cv2.circle(img, (head_c[0] + int(dx), head_c[1] + int(dy)), 2, (40, 50, 70), -1)
    for k in range(x + int(w * 0.2), x + w, 6):  # blanket stripes
        cv2.line(img, (k, y + 2), (k, y + h - 2), (120, 128, 150), 1)
    return (x - head_r + int(w * 0.08), y, w + head_r, h)


class OpenCVCamera:
    """A USB camera (V4L2) through cv2.VideoCapture, opened only for the capture."""

    def __init__(self, device: int | str = 0, width: int = 1280, height: int = 720) -> None:
        self.device, self.width, self.height = device, width, height

    def capture(self, count: int = 1) -> Capture:
        import cv2

        cap = cv2.VideoCapture(self.device)
        try:
            if not cap.isOpened():
                raise CameraError(f"camera {self.device!r} cannot be opened (is it connected? is the user in group video?)")
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
            frames = []
            for _ in range(count):
                ok, frame = cap.read()
                if not ok:
                    raise CameraError(f"camera {self.device!r} gave no picture")
                frames.append(frame)
            return Capture(frames)
        finally:
            cap.release()

    def close(self) -> None:
        pass


class PiCamera:
    """The Raspberry Pi camera through picamera2 (from the OS packages: apt install python3-picamera2)."""

    def __init__(self, width: int = 1280, height: int = 720) -> None:
        self.width, self.height = width, height

    def capture(self, count: int = 1) -> Capture:
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise CameraError("picamera2 is not installed: apt install python3-picamera2 "
                              "(and create the venv with --system-site-packages)") from None
        import cv2

        cam = Picamera2()
        try:
            cam.configure(cam.create_still_configuration(main={"size": (self.width, self.height), "format": "RGB888"}))
            cam.start()
            # picamera2's "RGB888" is B, G, R in memory: already OpenCV's order
            frames = [cam.capture_array("main") for _ in range(count)]
            return Capture([cv2.cvtColor(f, cv2.COLOR_BGRA2BGR) if f.shape[2] == 4 else f for f in frames])
        except CameraError:
            raise
        except Exception as exc:
            raise CameraError(f"the Pi camera failed: {type(exc).__name__}: {exc}") from None
        finally:
            cam.close()

    def close(self) -> None:
        pass


def open_camera(backend: str, width: int, height: int, device: int | str = 0, pose: str = "in_bed"):
    if backend == "synthetic":
        return SyntheticCamera(width, height, pose)
    if backend == "opencv":
        return OpenCVCamera(device, width, height)
    if backend == "picamera2":
        return PiCamera(width, height)
    raise CameraError(f"unknown camera backend {backend!r} (synthetic, opencv or picamera2)")

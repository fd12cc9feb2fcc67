"""One look-in's pictures, taken in a short-lived process of their own: camera, filter, JPEG.

Why a process: a camera stack that hangs or crashes (libcamera, V4L2 drivers) takes only this
process with it, never the daemon that carries the alarms; and OpenCV, numpy and the frames
never live in the daemon, so its memory is back at its idle level as soon as this exits.
Nothing touches the disk: the request comes as one JSON line on stdin, the JPEGs go back on
stdout, each as a 4-byte big-endian length and the bytes. Exit 0 with the pictures; with a
one-line reason on stderr, exit 2 when the camera fails, 3 when the pictures cannot fit max_bytes.

    python -m drivers.capture  <<< '{"camera": "synthetic", "device": 0, "width": 1280,
        "height": 720, "burst": 1, "privacy": "blur", "max_bytes": 700000}'
"""

import json
import struct
import sys
from protocol.errors import TryggError

QUALITIES = (80, 60, 40, 25)  # lowered until the pictures fit max_bytes
_LENGTH = struct.Struct(">I")


class CaptureError(TryggError, RuntimeError):
    """The camera gave no picture (exit 2)."""


class TooLarge(CaptureError):
    """The pictures cannot be made small enough for one message (exit 3): a config matter."""


def pictures(request: dict, camera=None) -> list[bytes]:
    """Capture, filter and encode as the request says; `camera` is for tests (default: open one)."""
    from . import privacy
    from .camera import CameraError, open_camera

    try:
        camera = camera or open_camera(request["camera"], request["width"], request["height"], request["device"])
        try:
            frames = camera.capture(request["burst"]).frames
        finally:
            camera.close()
    except CameraError as exc:
        raise CaptureError(f"camera: {exc}") from None
    filtered = [privacy.apply(frame, request["privacy"]) for frame in frames]
    del frames
    for quality in QUALITIES:
        jpegs = [privacy.to_jpeg(f, quality) for f in filtered]
        if sum(map(len, jpegs)) <= request["max_bytes"]:
            return jpegs
    raise TooLarge(f"the pictures do not fit one message even at JPEG quality {QUALITIES[-1]}; "
                       "lower [lookin] width/height or burst")


def write_pictures(out, jpegs: list[bytes]) -> None:
    for jpeg in jpegs:
        out.write(_LENGTH.pack(len(jpeg)) + jpeg)
    out.flush()


def read_pictures(data: bytes) -> list[bytes]:
    """The daemon's side: split what the process wrote; ValueError when it is cut short."""
    found, at = [], 0
    while at < len(data):
        if at + _LENGTH.size > len(data):
            raise ValueError("picture stream cut short")
        (size,) = _LENGTH.unpack_from(data, at)
        at += _LENGTH.size
        if at + size > len(data):
            raise ValueError("picture stream cut short")
        found.append(data[at : at + size])
        at += size
    return found


def main() -> int:
    try:
        request = json.loads(sys.stdin.readline())
        jpegs = pictures(request)
    except CaptureError as exc:
        print(str(exc), file=sys.stderr)
        return 3 if isinstance(exc, TooLarge) else 2
    write_pictures(sys.stdout.buffer, jpegs)
    return 0


if __name__ == "__main__":
    sys.exit(main())

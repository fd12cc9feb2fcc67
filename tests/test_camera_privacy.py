"""Look-in pictures: the camera backends and the privacy filters that run before anything leaves
the device. A filter must measurably remove detail while a person-shaped region stays findable."""

import sys

import cv2
import numpy as np
import pytest

from drivers import privacy
from drivers.camera import CameraError, OpenCVCamera, PiCamera, SyntheticCamera, open_camera


def detail(img) -> float:
    """High-frequency energy: the variance of the Laplacian of the grey picture."""
    return float(cv2.Laplacian(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix, iy = max(0, min(ax + aw, bx + bw) - max(ax, bx)), max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    return inter / (aw * ah + bw * bh - inter)


def brightest_shape(img):
    """The box of the largest shape Otsu's threshold separates from the room."""
    _, mask = cv2.threshold(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    x, y, w, h, _ = max(stats[1:], key=lambda s: s[4])
    return int(x), int(y), int(w), int(h)


def head_region(box, img):
    x, y, w, h = box
    return img[y: y + h, x: x + h]  # the head sits at the left end of the lying person


@pytest.mark.parametrize("pose", ["in_bed", "on_floor"])
def test_blur_removes_fine_detail_but_keeps_where_the_person_lies(pose):
    capture = SyntheticCamera(1280, 720, pose).capture()
    frame, person = capture.frames[0], capture.person_box
    blurred = privacy.apply(frame, "blur")
    assert blurred.shape == frame.shape
    assert detail(frame) > 500, "the synthetic picture must have detail to remove"
    assert detail(blurred) < 0.01 * detail(frame)
    face_before = head_region(person, frame).astype(float).std()
    face_after = head_region(person, blurred).astype(float).std()
    assert face_after < 0.5 * face_before, "the face's marks are still distinguishable"
    assert iou(brightest_shape(blurred), person) > 0.6, "the person is no longer findable in the blurred picture"


def test_blur_still_tells_in_bed_from_on_the_floor():
    centres = {}
    for pose in ("in_bed", "on_floor"):
        x, y, w, h = brightest_shape(privacy.blur(SyntheticCamera(1280, 720, pose).capture().frames[0]))
        centres[pose] = y + h / 2
    assert centres["on_floor"] - centres["in_bed"] > 100


@pytest.mark.parametrize("pose", ["in_bed", "on_floor"])
def test_silhouette_is_only_a_thin_outline_around_the_person(pose):
    capture = SyntheticCamera(1280, 720, pose).capture()
    out = privacy.apply(capture.frames[0], "silhouette")
    assert set(np.unique(out)) <= {0, 255}, "shading or colour survived"
    lit = out[:, :, 0] > 0
    assert 0 < lit.mean() < 0.03, "more than an outline was drawn"
    ys, xs = np.nonzero(lit)
    box = (int(xs.min()), int(ys.min()), int(xs.max() - xs.min()), int(ys.max() - ys.min()))
    assert iou(box, capture.person_box) > 0.7


def test_no_filter_is_an_exact_copy_and_an_unknown_level_is_refused():
    frame = SyntheticCamera(320, 180).capture().frames[0]
    copy = privacy.apply(frame, "none")
    assert copy is not frame and np.array_equal(copy, frame)
    with pytest.raises(ValueError, match="none, blur, silhouette"):
        privacy.apply(frame, "pixelate")


def test_jpeg_is_made_in_memory_and_decodes_to_the_same_size():
    frame = privacy.blur(SyntheticCamera(1280, 720).capture().frames[0])
    data = privacy.to_jpeg(frame)
    assert data[:2] == b"\xff\xd8"
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == frame.shape


def test_synthetic_camera_gives_a_burst_and_refuses_an_unknown_pose():
    capture = SyntheticCamera(640, 360, "away", seed=3).capture(count=3)
    assert len(capture.frames) == 3 and capture.person_box is None
    assert all(f.shape == (360, 640, 3) and f.dtype == np.uint8 for f in capture.frames)
    with pytest.raises(CameraError, match="in_bed, on_floor, away"):
        SyntheticCamera(pose="sitting")


def test_a_usb_camera_that_is_not_there_says_what_to_check():
    with pytest.raises(CameraError, match="cannot be opened"):
        OpenCVCamera("/dev/video-none", 640, 480).capture()


def test_picamera2_missing_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # as on a machine without the OS package
    with pytest.raises(CameraError, match="apt install python3-picamera2"):
        PiCamera().capture()


def test_unknown_backend_is_refused():
    with pytest.raises(CameraError, match="synthetic, opencv or picamera2"):
        open_camera("webcam", 640, 480)

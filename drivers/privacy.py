"""Privacy filters for look-in pictures, applied on the device before anything leaves it.

- `none`: the picture as taken (only where the resident's grant says so).
- `blur`: shrink by area averaging to 1/24 of the size, blur lightly, scale back smoothly.
  Area averaging is a proper low-pass filter (each output pixel is the mean of a 24x24 block),
  so every detail smaller than about 1/50 of the picture width - a face's features, writing,
  the pattern of a blanket - is gone for good, while a body-sized warm shape stays clear enough
  to tell in bed from on the floor. Doing the work at the small size keeps it fast on a Pi; a
  full-size Gaussian blur of the same strength would cost hundreds of times more.
- `silhouette`: only the outline of what stands out from the room: grey at 1/8 size, blurred,
  split by Otsu's threshold (chosen from the picture itself, so it follows the room's light),
  opened to drop specks, then only the outer contours of shapes larger than 0.5 % of the picture
  are drawn, as thin white lines on black. No texture, colour or shading survives.
OpenCV only (no trained model): deterministic, explainable, and small enough for a Pi.
"""

LEVELS = ("none", "blur", "silhouette")
BLUR_FACTOR = 24
SILHOUETTE_FACTOR = 8


def apply(frame, level: str):
    """The filtered copy of a BGR frame (same size)."""
    if level == "none":
        return frame.copy()
    if level == "blur":
        return blur(frame)
    if level == "silhouette":
        return silhouette(frame)
    raise ValueError(f"privacy level must be one of {', '.join(LEVELS)}, got {level!r}")


def blur(frame):
    import cv2

    h, w = frame.shape[:2]
    small = cv2.resize(frame, (max(1, w // BLUR_FACTOR), max(1, h // BLUR_FACTOR)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 1.0)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def silhouette(frame):
    import cv2
    import numpy as np

    h, w = frame.shape[:2]
    sw, sh = max(1, w // SILHOUETTE_FACTOR), max(1, h // SILHOUETTE_FACTOR)
    gray = cv2.resize(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), (sw, sh), interpolation=cv2.INTER_AREA)
    gray = cv2.GaussianBlur(gray, (0, 0), 2.0)
    _, mask = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    shapes = [c for c in contours if cv2.contourArea(c) >= 0.005 * sw * sh]
    out = np.zeros((sh, sw), np.uint8)
    cv2.drawContours(out, shapes, -1, 255, thickness=1)
    out = cv2.resize(out, (w, h), interpolation=cv2.INTER_NEAREST)
    return cv2.cvtColor(out, cv2.COLOR_GRAY2BGR)


def to_jpeg(frame, quality: int = 80) -> bytes:
    """Encode in memory (never through a file)."""
    import cv2

    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("the picture could not be encoded as JPEG")
    return data.tobytes()

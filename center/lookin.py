"""Writing a look-in's pictures where the staff member asked, and nowhere else.

The pictures arrive sealed to the staff member's key (commander.py) and are opened in memory;
this writes them with mode 0600 from the start (never readable by others, not even briefly)
and atomically, so a half-written file never looks like a picture of an empty bed.
"""

import base64
import os
from pathlib import Path

from base.errors import TryggError
from protocol.messages import LookinMessage


def picture_paths(out: Path, count: int) -> list[Path]:
    """FILE for the first picture, FILE-2.jpg, FILE-3.jpg ... for the rest of a burst."""
    stem = out.with_suffix("") if out.suffix else out
    return [out] + [stem.with_name(f"{stem.name}-{i}.jpg") for i in range(2, count + 1)]


def write_pictures(picture: LookinMessage, out: Path) -> list[Path]:
    try:
        pictures = [base64.b64decode(frame, validate=True) for frame in picture.frames]
    except ValueError:
        raise TryggError(f"the picture from {picture.home} is damaged (not base64)") from None
    paths = picture_paths(Path(out), len(pictures))
    for path, data in zip(paths, pictures):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.unlink(missing_ok=True)  # a leftover could have another mode; O_CREAT keeps an old file's
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    return paths

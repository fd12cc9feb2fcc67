"""Time-ordered unique event ids (UUIDv7, RFC 9562).

Written here rather than imported because the standard library only gains `uuid.uuid7` in
Python 3.14 and the whole algorithm is a dozen lines; a dependency would cost more than it saves.
Ids sort by creation time, which the outbox and the receiver use for ordering and dedupe.
"""

import os
import re
import threading
import time
import uuid

_UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
_lock = threading.Lock()
_last_ms = 0
_counter = 0


def new_id(now_ms: int | None = None) -> str:
    """A new UUIDv7 string; monotonic within this process even within one millisecond."""
    global _last_ms, _counter
    with _lock:
        ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        if ms <= _last_ms:
            ms = _last_ms
            _counter += 1
            if _counter > 0xFFF:  # 4096 ids in one ms: borrow the next millisecond
                ms += 1
                _counter = 0
        else:
            _counter = int.from_bytes(os.urandom(2), "big") & 0x3FF  # leave room to count up
        _last_ms = ms
        rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
        value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | _counter << 64 | 0b10 << 62 | rand_b
        return str(uuid.UUID(int=value))


def is_valid_id(text: str) -> bool:
    """True for a canonical lower-case UUIDv7 string."""
    return isinstance(text, str) and bool(_UUID_RE.fullmatch(text))

"""Wall-clock trust: is the system clock synchronized (NTP), so event times can be believed?

A Pi has no real-time clock: after a power cut while offline it boots with a stale time.
Events carry `clock_synced` so night staff know when a timestamp is only approximate.
Reads the kernel's NTP state with ntp_adjtime(2) (read-only, modes=0); where that is not
available the clock is reported as unsynchronized (fail closed).
"""

import ctypes
import ctypes.util
import time
from datetime import datetime, timezone

_TIME_ERROR = 5  # kernel clock state "unsynchronized"


class _Timex(ctypes.Structure):
    _fields_ = [("modes", ctypes.c_uint)] + [(f"_f{i}", ctypes.c_long) for i in range(64)]


def _load_adjtime():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.ntp_adjtime
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.POINTER(_Timex)]
    fn.restype = ctypes.c_int
    return fn


_ntp_adjtime = _load_adjtime()


def kernel_clock_synced() -> bool:
    """True when the kernel says its clock is disciplined by NTP (or PTP)."""
    if _ntp_adjtime is None:
        return False
    state = _ntp_adjtime(ctypes.byref(_Timex()))
    return 0 <= state < _TIME_ERROR


class SystemClock:
    """The clock the daemon injects everywhere; tests pass their own with the same methods."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def synced(self) -> bool:
        return kernel_clock_synced()

    def wait(self, event, seconds: float) -> bool:
        """Wait for the event or the time, whichever first; drivers wait only through this, so a
        test's clock (or a simulation's faster one) decides how long "10 minutes" is."""
        return event.wait(seconds)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

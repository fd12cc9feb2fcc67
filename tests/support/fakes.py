"""Test doubles for the daemon's injected parts: a clock the test moves, a lock that records."""

from datetime import datetime, timedelta


class FakeClock:
    """The daemon's clock interface (now/time/monotonic/synced), every reading settable."""

    def __init__(self, wall: datetime, mono: float = 1000.0, synced: bool = True) -> None:
        self.wall, self.mono, self.is_synced = wall, mono, synced

    def now(self) -> datetime:
        return self.wall

    def time(self) -> float:
        return self.wall.timestamp()

    def monotonic(self) -> float:
        return self.mono

    def synced(self) -> bool:
        return self.is_synced

    def wait(self, event, seconds: float) -> bool:
        """Never blocks: time passes at once unless the event is already set."""
        if event.is_set():
            return True
        self.advance(seconds)
        return False

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds


class RecordingLock:
    """Stands in for a door-lock driver: every unlock()/lock() call is recorded."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def unlock(self, by: str = "") -> dict:
        self.calls.append("unlock")
        return {"state": "unlocked"}

    def lock(self, by: str = "") -> dict:
        self.calls.append("lock")
        return {"state": "locked"}

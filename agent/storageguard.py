"""What the daemon knows about its storage failing: since when, why, and what could not be kept.

A write that fails for lack of space (even one the outbox then saved by giving back its alarm
reserve) or for any other storage error puts the card in the "failing" state, and a `fault`
(component storage) is due at once; the state ends when the reserve is whole again and the
free space is above the margin (the daemon's sweep checks), and `fault_cleared` is sent. The
state lives in memory only, because the disk is the thing failing; so do the counts of rows
neither stored nor held in memory, per class, for the next `data_lost` report. No I/O.
"""

import threading

from protocol.topics import CLASSES


class StorageGuard:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.error: str | None = None  # the failure, while writes fail
        self.failures = 0  # writes that failed since start
        self._lost = {c: 0 for c in CLASSES}
        self._fault_due = False

    def failed(self, error: Exception) -> None:
        """A write failed; the first failure since storage last recovered makes a fault due."""
        with self._lock:
            self._fault_due = self._fault_due or self.error is None
            self.error = str(error)[:200]
            self.failures += 1

    def take_fault_due(self) -> str | None:
        """The error to report as a fault, once per failing spell."""
        with self._lock:
            due, self._fault_due = self._fault_due, False
            return self.error if due else None

    def recovered(self) -> str | None:
        """Storage works again; the old error when it was failing (fault_cleared is due)."""
        with self._lock:
            old, self.error = self.error, None
            return old

    def lost(self, cls: str) -> None:
        """A row that was neither stored nor held in memory."""
        with self._lock:
            self._lost[cls] += 1

    def take_lost(self) -> dict[str, int]:
        """The unreported losses, forgotten here once taken (the caller reports them)."""
        with self._lock:
            lost, self._lost = self._lost, {c: 0 for c in CLASSES}
            return lost

    def give_back(self, lost: dict[str, int]) -> None:
        """A report that could not be sent: count these again."""
        with self._lock:
            for cls, n in lost.items():
                self._lost[cls] += n

    def state(self, disk: dict) -> str:
        """ok, low (free space below the margin: old rows make way for new) or failing."""
        if self.error is not None:
            return "failing"
        return "low" if disk.get("low") else "ok"

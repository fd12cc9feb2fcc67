"""Group commit: many callers, few fsyncs, and nobody is told "accepted" before the fsync.

Callers block in `put` until the transaction holding their row has committed. An alarm is
committed at once (together with whatever else is already queued); lower classes wait up to
`window_s` so that a burst of telemetry costs one fsync instead of hundreds, sparing both
throughput and the SD card. Owns one writer thread; never touches the network.
"""

import queue
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from .errors import StorageError
from .outbox import Outbox, Row

_STOP = object()
MAX_BATCH = 500


class GroupCommitter:
    def __init__(self, outbox: Outbox, window_s: float = 0.005) -> None:
        self.outbox = outbox
        self.window_s = window_s
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="outbox-writer", daemon=True)
        self._thread.start()

    def put(self, row: Row) -> bool:
        """Queue row and wait until it is durably committed; True if accepted, False if dropped.

        Waits as long as the writer lives (a slow SD card is slow, not a failure: a timeout
        here would tell the caller "failed" for a row that is committed a moment later).
        """
        fut: Future = Future()
        self._queue.put((row, fut))
        while True:
            try:
                return fut.result(timeout=5.0)
            except FutureTimeout:
                if not self.alive():
                    raise StorageError("the outbox writer has stopped; the event was not stored") from None

    def alive(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            batch = [item]
            stop = self._collect(batch)
            self._commit(batch)
            if stop:
                return

    def _collect(self, batch: list) -> bool:
        """Gather more items: none waited for if an alarm is in the batch. True if asked to stop."""
        urgent = batch[0][0].cls == "alarm" or self.window_s <= 0
        deadline = time.monotonic() + self.window_s
        while len(batch) < MAX_BATCH:
            wait = deadline - time.monotonic()
            try:
                item = self._queue.get_nowait() if urgent or wait <= 0 else self._queue.get(timeout=wait)
            except queue.Empty:
                return False
            if item is _STOP:
                return True
            batch.append(item)
            urgent = urgent or item[0].cls == "alarm"
        return False

    def _commit(self, batch: list) -> None:
        try:
            results = self.outbox.put_many([row for row, _ in batch])
        except Exception as exc:  # noqa: BLE001 - callers must hear of any failure, never hang
            for _, fut in batch:
                fut.set_exception(exc)
            return
        for (_, fut), ok in zip(batch, results, strict=True):
            fut.set_result(ok)

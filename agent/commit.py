"""Group commit: many callers, few fsyncs, and nobody is told "accepted" before the fsync.

Callers block in `put` until the transaction holding their row has committed. An alarm is
committed at once, in the caller's own thread (no hand-off, no queue). Other rows go to one
writer thread that commits everything queued in one transaction: rows that arrive while a
commit's fsync is under way share the next one, so concurrent drivers cost one fsync per
batch instead of one each, sparing both throughput and the SD card. `window_s` (default 0)
can make the writer wait a little longer for company; measured, waiting only slows callers
that are each blocked on their own row. Owns one writer thread; never touches the network.
"""

import queue
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from base.errors import StorageError
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
        if row.cls == "alarm":
            return self.outbox.put_many([row])[0]
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
        """Gather what is queued (waiting up to window_s for more). True if asked to stop."""
        deadline = time.monotonic() + self.window_s
        while len(batch) < MAX_BATCH:
            wait = deadline - time.monotonic()
            try:
                item = self._queue.get_nowait() if wait <= 0 else self._queue.get(timeout=wait)
            except queue.Empty:
                return False
            if item is _STOP:
                return True
            batch.append(item)
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

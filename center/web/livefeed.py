"""One look at the store's feed for every open live stream.

Each browser page keeps a stream open; without this each would query the store ten times a
second (measured: 32 % of a core for 50 pages). One poller reads new feed rows and wakes every
stream; a stream that fell further behind than the rows kept is told to reload (the page reads
everything again on any change anyway).
"""

import asyncio

from starlette.concurrency import run_in_threadpool

from .. import feed

KEPT = 2000  # recent rows held for streams catching up


class LiveFeed:
    def __init__(self, db, poll_s: float) -> None:
        self.db = db
        self.poll_s = poll_s
        self.seq: int | None = None
        self._rows: list = []
        self._changed: asyncio.Condition | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        """Started by the first stream, in the server's event loop."""
        if self._task is None:
            self._changed = asyncio.Condition()
            self.seq = await run_in_threadpool(feed.last_seq, self.db)
            self._task = asyncio.create_task(self._poll())

    async def _poll(self) -> None:
        while True:
            try:
                rows = await run_in_threadpool(feed.after, self.db, self.seq, 500)
            except Exception:  # the store is away for a moment: streams wait, the poller goes on
                rows = []
                await asyncio.sleep(1.0)
            if not rows:
                await asyncio.sleep(self.poll_s)
                continue
            self._rows = (self._rows + rows)[-KEPT:]
            self.seq = rows[-1].seq
            async with self._changed:
                self._changed.notify_all()

    async def after(self, seq: int, timeout: float) -> tuple[list, bool]:
        """Rows after seq (waiting up to timeout for one), and whether some were no longer kept."""
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: self.seq > seq), timeout)
            except asyncio.TimeoutError:
                return [], False
        rows = [r for r in self._rows if r.seq > seq]
        return rows, bool(rows) and rows[0].seq > seq + 1 and len(self._rows) == KEPT

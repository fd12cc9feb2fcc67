#!/usr/bin/env python3
"""outbox_disk: what the outbox really takes on the card for a given byte bound.

Fills an outbox (real SQLite file, the daemon's settings) with sealed-size rows (1,024 B, the
padded size of every ordinary message) far past its bound, in group commits of OUTBOX_BATCH,
while a second pass drains and refills it, and records the largest total of the database, its
WAL and shared-memory file seen after any commit. The reserve file is reported on its own.
Sizes: OUTBOX_BOUND_MIB (8, also try 64), OUTBOX_BATCH (500: the group committer's largest batch).
"""

import os
import time
from pathlib import Path

from _common import env_int, header, result, say, temp_root

from agent.outbox import WAL_LIMIT, WAL_PAGES, Outbox, Row
from protocol import topics

BOUND = env_int("OUTBOX_BOUND_MIB", 8) * 1024 * 1024
BATCH = env_int("OUTBOX_BATCH", 500)
PAYLOAD = 1024


def on_disk(path: Path) -> int:
    return sum(os.stat(p).st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())


def main() -> None:
    header(f"outbox_disk: bound {BOUND // 1048576} MiB, rows of {PAYLOAD} B, batches of {BATCH}")
    with temp_root("outbox-disk") as root:
        path = root / "outbox.db"
        ob = Outbox(path, BOUND, {"event": None, "telemetry": None}, reserve_bytes=2 * 1024 * 1024)
        peak, n, t0 = 0, 0, time.monotonic()
        rows_to_fill = 3 * BOUND // PAYLOAD
        for cls in ("telemetry", "event"):
            for start in range(0, rows_to_fill // 2, BATCH):
                ob.put_many([Row(f"{cls}-{start + i:08d}", cls, topics.up("hem-bench", cls), os.urandom(PAYLOAD),
                                 time.time()) for i in range(BATCH)])
                n += BATCH
                peak = max(peak, on_disk(path))
        drained = [r.id for r in ob.next_batch({}, 10_000_000)]
        for i in range(0, len(drained), BATCH):  # acks arrive and rows go, as after an outage
            ob.delete(drained[i:i + BATCH])
            peak = max(peak, on_disk(path))
        after_drain = on_disk(path)
        wal_after = os.stat(f"{path}-wal").st_size if Path(f"{path}-wal").exists() else 0
        reserve = ob.reserve.held
        stats = ob.stats()
        ob.close()
        elapsed = time.monotonic() - t0
    say(f"  {n} rows put in {elapsed:.1f} s; dropped {sum(stats['dropped'].values())}; "
        f"wal_autocheckpoint {WAL_PAGES} pages, journal_size_limit {WAL_LIMIT // 1024} KiB")
    result("outbox_disk", "largest database + WAL + shm on disk", peak / 1048576, "MiB", digits=2,
           note=f"bound {BOUND // 1048576} MiB: {peak / BOUND:.2f}x the bound")
    result("outbox_disk", "after a full drain", after_drain / 1048576, "MiB", digits=2,
           note=f"WAL {wal_after // 1024} KiB; freed pages stay in the file for reuse")
    result("outbox_disk", "alarm reserve beside it", reserve / 1048576, "MiB", digits=2)
    say()


if __name__ == "__main__":
    main()

"""The console's sign-in log: every sign-in, every refusal with its reason, every passkey code
given out and every passkey registered or removed, hash-chained like the case log (caselog.py).

Its own append-only table (`sign_in_log`, migrations step 6) rather than the case log, whose
entries each belong to a case; built the same way: time and what happened (`signed_in`,
`refused`, `code_issued`, `passkey_added`, `passkey_removed`, `refusals_suppressed`) readable,
who and why (the name given, the reason and its code, the client's address, the passkey's id)
sealed to the center key; each entry's hash covers the previous entry's hash, those columns and
the sealed bytes, so an entry removed, reordered or edited anywhere breaks the chain there, and
the chain is checked without the key (`trygg center sign-ins`). Nothing here updates or deletes.

Refusals come from anyone who can reach the page, so they are recorded at most
REFUSALS_PER_MIN a minute per console; the rest are counted and the count recorded once the
minute is over (`refusals_suppressed`), as the device does with refused commands.
"""

import hashlib
import threading
from collections import Counter
from datetime import UTC, datetime

from protocol.messages import iso

from ..atrest import Sealer
from ..caselog import LogCheck  # one verdict for both chained logs
from ..db import Database

ACCESS_CONTEXT = "trygg-center/v1/sign-in-log/"
GENESIS = "0" * 64
REFUSALS_PER_MIN = 30


def _hash(prev: str, at: float, action: str, sealed: bytes) -> str:
    head = f"{prev}|{at!r}|{action}|".encode()
    return hashlib.sha256(head + hashlib.sha256(sealed).digest()).hexdigest()


class AccessLog:
    def __init__(self, db: Database, sealer: Sealer, clock, refusals_per_min: int = REFUSALS_PER_MIN) -> None:
        self.db = db
        self.sealer = sealer
        self.clock = clock
        self.refusals_per_min = refusals_per_min
        self._minute = -1
        self._refusals = 0
        self._suppressed: Counter[str] = Counter()
        self._lock = threading.Lock()

    def append(self, action: str, entry: dict) -> None:
        at = self.clock()
        sealed = self.sealer.seal(f"{action}/{at!r}", entry)
        with self.db.tx(lock="sign_in_log") as tx:
            row = tx.execute("SELECT hash FROM sign_in_log ORDER BY seq DESC LIMIT 1").fetchone()
            prev = row[0] if row else GENESIS
            tx.execute("INSERT INTO sign_in_log (at, action, prev, hash, sealed) VALUES (?,?,?,?,?)",
                       (at, action, prev, _hash(prev, at, action, sealed), sealed))

    def refused(self, entry: dict) -> bool:
        """Record a refusal unless this minute's share is spent (then count it); whether it was recorded."""
        minute = int(self.clock() // 60)
        with self._lock:
            if minute != self._minute:
                over, self._suppressed = self._suppressed, Counter()
                self._minute, self._refusals = minute, 0
            else:
                over = Counter()
            self._refusals += 1
            allowed = self._refusals <= self.refusals_per_min
            if not allowed:
                self._suppressed[entry.get("code", "refused")] += 1
        if over:
            self.append("refusals_suppressed", {"suppressed": sum(over.values()), "by_reason": dict(over)})
        if allowed:
            self.append("refused", entry)
        return allowed

    def entries(self, since: float = 0.0) -> list[dict]:
        """The log from since, oldest first, opened."""
        out = []
        for at, action, sealed in self.db.query("SELECT at, action, sealed FROM sign_in_log WHERE at >= ? ORDER BY seq",
                                                (since,)):
            entry = self.sealer.open(f"{action}/{at!r}", bytes(sealed)) or {"unopened": True}
            out.append({"at": iso(datetime.fromtimestamp(at, UTC)), "action": action, **entry})
        return out


def verify(db: Database) -> LogCheck:
    """Walk the whole chain; name the first entry whose link or hash is wrong."""
    prev, n = GENESIS, 0
    for seq, at, action, stored_prev, stored_hash, sealed in db.query(
            "SELECT seq, at, action, prev, hash, sealed FROM sign_in_log ORDER BY seq"):
        n += 1
        if stored_prev != prev:
            return LogCheck(False, n, seq, f"entry {seq} ({action}) does not follow the entry before it: "
                                           "an entry was removed or reordered")
        if _hash(prev, at, action, bytes(sealed)) != stored_hash:
            return LogCheck(False, n, seq, f"entry {seq} ({action}) was changed after it was written")
        prev = stored_hash
    return LogCheck(True, n)

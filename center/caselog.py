"""The center's case log: every change of every alarm case, hash-chained like the device's audit.

Each entry holds routing in the clear (case id, time, action) and who and what sealed to the
center key; its hash covers the previous entry's hash, those columns and the sealed bytes, so
an entry removed, reordered or edited anywhere breaks the chain at that entry, and the chain
can be checked without the key (`trygg center cases verify`). One chain for the whole center:
appends take the "case_log" lock (after any case lock, before the feed's).
"""

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone

from protocol.messages import iso

from .atrest import Sealer
from .db import Database

GENESIS = "0" * 64


def _hash(prev: str, case_id: str, at: float, action: str, sealed: bytes) -> str:
    head = f"{prev}|{case_id}|{at!r}|{action}|".encode()
    return hashlib.sha256(head + hashlib.sha256(sealed).digest()).hexdigest()


def append(tx, sealer: Sealer, case_id: str, action: str, at: float, entry: dict) -> None:
    tx.lock("case_log")
    row = tx.execute("SELECT hash FROM case_log ORDER BY seq DESC LIMIT 1").fetchone()
    prev = row[0] if row else GENESIS
    sealed = sealer.seal(f"caselog/{case_id}/{action}/{at!r}", entry)
    tx.execute("INSERT INTO case_log (case_id, at, action, prev, hash, sealed) VALUES (?,?,?,?,?,?)",
               (case_id, at, action, prev, _hash(prev, case_id, at, action, sealed), sealed))


def history(db: Database, sealer: Sealer, case_id: str) -> list[dict]:
    """One case's entries, oldest first, opened: time, action, who, and what else was recorded."""
    out = []
    for at, action, sealed in db.query("SELECT at, action, sealed FROM case_log WHERE case_id = ? ORDER BY seq",
                                       (case_id,)):
        entry = sealer.open(f"caselog/{case_id}/{action}/{at!r}", bytes(sealed)) or {"unopened": True}
        entry.pop("statement", None)
        entry.pop("sig", None)
        out.append({"at": iso(datetime.fromtimestamp(at, timezone.utc)), "action": action, **entry})
    return out


@dataclass(frozen=True)
class LogCheck:
    ok: bool
    entries: int
    first_bad: int | None = None
    problem: str | None = None


def verify(db: Database) -> LogCheck:
    """Walk the whole chain; name the first entry whose link or hash is wrong."""
    prev, n = GENESIS, 0
    for seq, case_id, at, action, stored_prev, stored_hash, sealed in db.query(
            "SELECT seq, case_id, at, action, prev, hash, sealed FROM case_log ORDER BY seq"):
        n += 1
        if stored_prev != prev:
            return LogCheck(False, n, seq, f"entry {seq} ({action} of case {case_id}) does not follow the entry "
                                           "before it: an entry was removed or reordered")
        if _hash(prev, case_id, at, action, bytes(sealed)) != stored_hash:
            return LogCheck(False, n, seq, f"entry {seq} ({action} of case {case_id}) was changed after it was written")
        prev = stored_hash
    return LogCheck(True, n)

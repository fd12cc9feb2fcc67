"""The audit trail: an append-only, hash-chained log of everything security-relevant.

Every command received (with its verdict and reason), every enrollment change, every config
change, every start and stop. Each entry's hash covers the previous entry's hash and its own
canonical content, so altering, removing or reordering any entry breaks the chain from that
entry on, and `verify` names the first bad one. The newest (seq, hash) is also kept as the
recorded head, so cutting entries off the end is caught too; someone who can rewrite the
whole file and the head could hide that, which is why every entry is also sent to the center
as an `audit` event (the daemon forwards them, `unsent`/`mark_sent`). Never deletes.
"""

import hashlib
import json
import sqlite3
from dataclasses import asdict, dataclass
from typing import Any

from .trustdb import TrustDB

GENESIS = "0" * 64
_HEAD = "audit_head"
_SENT = "audit_sent"


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    time: float
    synced: bool
    kind: str
    detail: dict[str, Any]
    prev: str
    hash: str

    def to_json(self) -> dict:
        return asdict(self)


def entry_hash(prev: str, seq: int, time: float, synced: bool, kind: str, detail_json: str) -> str:
    """SHA-256 over the previous hash and this entry's canonical content (hex)."""
    content = json.dumps([seq, repr(float(time)), bool(synced), kind, detail_json], separators=(",", ":"))
    return hashlib.sha256(f"{prev}\n{content}".encode()).hexdigest()


def _well_typed(time, synced, kind, detail_json) -> bool:
    """Exactly the column types append() writes; anything else was changed behind our back."""
    return isinstance(time, float) and synced in (0, 1) and isinstance(kind, str) and isinstance(detail_json, str)


def _canonical(detail: dict) -> str:
    return json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    entries: int
    bad_seq: int | None = None
    reason: str = ""


class AuditLog:
    def __init__(self, db: TrustDB, clock) -> None:
        self.db = db
        self.clock = clock

    def append(self, kind: str, detail: dict, conn: sqlite3.Connection | None = None) -> AuditEntry:
        """Add one entry; inside the caller's write transaction when conn is given."""
        if conn is not None:
            return self._append(conn, kind, detail)
        with self.db.write() as conn:
            return self._append(conn, kind, detail)

    def _append(self, conn: sqlite3.Connection, kind: str, detail: dict) -> AuditEntry:
        last = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
        time, synced, detail_json = self.clock.time(), bool(self.clock.synced()), _canonical(detail)
        digest = entry_hash(prev, seq, time, synced, kind, detail_json)
        conn.execute("INSERT INTO audit (seq, time, synced, kind, detail, prev, hash) VALUES (?,?,?,?,?,?,?)",
                     (seq, time, int(synced), kind, detail_json, prev, digest))
        TrustDB.put_setting(conn, _HEAD, f"{seq}:{digest}")
        return AuditEntry(seq, time, synced, kind, json.loads(detail_json), prev, digest)

    def entries(self, since: float | None = None, after_seq: int = 0, limit: int = 1_000_000) -> list[AuditEntry]:
        rows = self.db.read(
            "SELECT seq, time, synced, kind, detail, prev, hash FROM audit WHERE seq > ? AND time >= ? "
            "ORDER BY seq LIMIT ?", (after_seq, since if since is not None else float("-inf"), limit))
        return [AuditEntry(s, t, bool(y), k, json.loads(d), p, h) for s, t, y, k, d, p, h in rows]

    def verify(self) -> Verdict:
        """Walk the whole chain; the first entry that does not fit is named."""
        with self.db.snapshot() as conn:  # rows and head from one state, even while the daemon appends
            rows = conn.execute("SELECT seq, time, synced, kind, detail, prev, hash FROM audit ORDER BY seq").fetchall()
            head = conn.execute("SELECT value FROM settings WHERE key = ?", (_HEAD,)).fetchone()
        expected_seq, prev = 1, GENESIS
        for seq, time, synced, kind, detail_json, stored_prev, stored_hash in rows:
            if seq != expected_seq:
                return Verdict(False, expected_seq - 1, expected_seq, f"entry {expected_seq} is missing (next is {seq})")
            if stored_prev != prev:
                return Verdict(False, seq - 1, seq, f"entry {seq} does not follow entry {seq - 1} (chain broken)")
            if not _well_typed(time, synced, kind, detail_json) or \
                    entry_hash(prev, seq, time, synced, kind, detail_json) != stored_hash:
                return Verdict(False, seq - 1, seq, f"entry {seq} was altered (hash mismatch)")
            prev, expected_seq = stored_hash, seq + 1
        count = expected_seq - 1
        if head is not None and head[0] != f"{count}:{prev}":
            head_seq = int(head[0].split(":")[0])
            if head_seq > count:
                return Verdict(False, count, count + 1, f"entries {count + 1}..{head_seq} were removed from the end")
            return Verdict(False, count, head_seq, f"entry {head_seq} does not match the recorded head")
        return Verdict(True, count)

    # -- forwarding to the center (the daemon sends each entry as an `audit` event) ------------
    def unsent(self, limit: int = 100) -> list[AuditEntry]:
        return self.entries(after_seq=int(self.db.setting(_SENT) or 0), limit=limit)

    def mark_sent(self, seq: int) -> None:
        with self.db.write() as conn:
            TrustDB.put_setting(conn, _SENT, str(seq))

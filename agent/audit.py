"""The audit trail: an append-only, hash-chained log of everything security-relevant.

Every command received (with its verdict and reason), every enrollment change, every config
change, every start and stop. Each entry's hash covers the previous entry's hash and its own
canonical content, so altering, removing or reordering any entry breaks the chain from that
entry on, and `verify` names the first bad one. The newest (seq, hash) is also kept as the
recorded head, so cutting entries off the end is caught too; someone who can rewrite the
whole file and the head could hide that, which is why every entry is also sent to the center
as an `audit` event (the daemon forwards them, `unsent`/`mark_sent`). Never deletes.

Sealed at rest. An entry's detail names people, locks and reasons; it is sealed to the care
center's key (trustdb.AtRest) and only a few non-personal fields stay readable on the device
(`PLAIN`: a command's action, outcome and id, a config change's setting names, ...), so
`trygg audit show` on the device shows seq, time, kind and those, and the full trail is read at
the center, which opens the sealed detail of each forwarded `audit` event (`open_detail`).
The hash covers what is stored (the readable fields and the sealed bytes), so `verify` needs
no key and still names the first altered, removed or reordered entry, a changed sealed byte
included.

Two row forms, both verified: sealed (`sealed` set, `detail` the readable part) and plain
(`sealed` NULL, `detail` everything), which older versions wrote and a log without AtRest
still writes (unit tests). When a holder of the keys (the daemon, a trust command) opens a log
with plain rows whose chain verifies, they are sealed in one transaction: the chain is
re-hashed from the first entry and an `audit_sealed` entry records the old head (seq:hash),
which the center holds from the forwarded originals; then the file is scrubbed (VACUUM, WAL
truncated). A chain that does not verify is left as it is, for verify to name.
"""

import base64
import hashlib
import json
import logging
import sqlite3
from dataclasses import asdict, dataclass
from typing import Any

from base.auditdetail import seal_context
from protocol.auditchain import GENESIS, entry_hash
from protocol.auditchain import canonical as _canonical

from .trustdb import NAMED_SECTIONS, AtRest, TrustDB

log = logging.getLogger(__name__)
_HEAD = "audit_head"
_SENT = "audit_sent"

# Per kind, the detail fields that stay readable on the device: what a technician needs to see
# that something happened and how it ended, never who, which lock or device, or why in words.
# Every other field (and every field of a kind not listed) is sealed.
PLAIN: dict[str, tuple[str, ...]] = {
    "command": ("outcome", "action", "command", "bytes"),
    "command_refusals_suppressed": ("suppressed",),
    "start": ("config_sha256", "center_key"),
    "stop": ("uptime_s",),
    "config_changed": ("changed", "config_sha256"),
    "staff_added": ("role", "kid", "replaced"),
    "staff_removed": ("role", "kid"),
    "center_key_staged": ("kid",),
    "center_key_switched": ("from", "to"),
    "lookin_grant_changed": ("changed",),
    "dispenser_refilled": ("doses_left", "days_left"),
    "audit_sealed": ("entries", "old_head"),
}
# A command's reason in words can name a person or a lock; what stays readable is its kind.
_REASON_KINDS = ("oversized", "wrong topic", "envelope", "malformed command", "command for home", "replayed",
                 "not fresh", "not allowed")


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    time: float
    synced: bool
    kind: str
    detail: dict[str, Any]  # what the device can read: the PLAIN fields, or all of a plain-form entry
    prev: str
    hash: str
    sealed: bytes | None = None  # the whole detail, sealed to the center (bound by seal_context)

    def to_json(self) -> dict:
        """As forwarded to the center: the sealed detail in base64 (null for a plain-form entry)."""
        out = asdict(self)
        out["sealed"] = base64.b64encode(self.sealed).decode() if self.sealed is not None else None
        return out


def _well_typed(time, synced, kind, detail_json, sealed) -> bool:
    """Exactly the column types append() writes; anything else was changed behind our back."""
    return (isinstance(time, float) and synced in (0, 1) and isinstance(kind, str) and isinstance(detail_json, str)
            and (sealed is None or isinstance(sealed, bytes)))


def readable_part(kind: str, detail: dict) -> dict:
    """The fields of an entry's detail that stay readable on the device (see PLAIN)."""
    out = {k: detail[k] for k in PLAIN.get(kind, ()) if k in detail}
    if kind == "config_changed" and isinstance(out.get("changed"), list):  # "locks.front-door" -> "locks"
        out["changed"] = sorted({c.split(".")[0] if c.split(".")[0] in NAMED_SECTIONS else c
                                 for c in map(str, out["changed"])})
    if kind == "command" and detail.get("reason"):
        reason = str(detail["reason"])
        out["reason_kind"] = next((k for k in _REASON_KINDS if reason.startswith(k)),
                                  "revoked" if reason.endswith(" is revoked") else "other")
    return out


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
        if db.at_rest is not None:
            self._seal_plain_entries(db.at_rest)

    def record_start(self, config: dict, center_key: str) -> None:
        """Audit a daemon's start, and which settings changed since the last start (digests of the
        config only are kept: no names at rest), in one transaction."""
        digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
        with self.db.write() as conn:
            changed = self.db.remember_config(conn, config)
            if changed:
                self.append("config_changed", {"changed": changed, "config_sha256": digest}, conn)
            self.append("start", {"config_sha256": digest, "center_key": center_key}, conn)

    def append(self, kind: str, detail: dict, conn: sqlite3.Connection | None = None) -> AuditEntry:
        """Add one entry; inside the caller's write transaction when conn is given."""
        if conn is not None:
            return self._append(conn, kind, detail)
        with self.db.write() as conn:
            return self._append(conn, kind, detail)

    def _stored(self, seq: int, kind: str, detail: dict) -> tuple[str, bytes | None]:
        """(detail column, sealed column) of an entry: sealed to the center when we have its key."""
        at_rest = self.db.at_rest
        if at_rest is None:
            return _canonical(detail), None
        sealed = at_rest.for_center(seal_context(seq, kind), _canonical(detail).encode())
        return _canonical(readable_part(kind, detail)), sealed

    def _append(self, conn: sqlite3.Connection, kind: str, detail: dict) -> AuditEntry:
        last = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
        time, synced = self.clock.time(), bool(self.clock.synced())
        detail_json, sealed = self._stored(seq, kind, detail)
        digest = entry_hash(prev, seq, time, synced, kind, detail_json, sealed)
        conn.execute("INSERT INTO audit (seq, time, synced, kind, detail, prev, hash, sealed) VALUES (?,?,?,?,?,?,?,?)",
                     (seq, time, int(synced), kind, detail_json, prev, digest, sealed))
        TrustDB.put_setting(conn, _HEAD, f"{seq}:{digest}")
        return AuditEntry(seq, time, synced, kind, json.loads(detail_json), prev, digest, sealed)

    def entries(self, since: float | None = None, after_seq: int = 0, limit: int = 1_000_000) -> list[AuditEntry]:
        rows = self.db.read(
            "SELECT seq, time, synced, kind, detail, prev, hash, sealed FROM audit WHERE seq > ? AND time >= ? "
            "ORDER BY seq LIMIT ?", (after_seq, since if since is not None else float("-inf"), limit))
        return [AuditEntry(s, t, bool(y), k, json.loads(d), p, h, x) for s, t, y, k, d, p, h, x in rows]

    def verify(self) -> Verdict:
        """Walk the whole chain; the first entry that does not fit is named."""
        with self.db.snapshot() as conn:  # rows and head from one state, even while the daemon appends
            return _verify_rows(conn)

    def _seal_plain_entries(self, at_rest: AtRest) -> None:
        """Seal format-1 entries (see the module docstring); one cheap query in the usual case."""
        if not self.db.read("SELECT 1 FROM audit WHERE sealed IS NULL LIMIT 1"):
            return
        with self.db.write() as conn:
            if not conn.execute("SELECT 1 FROM audit WHERE sealed IS NULL LIMIT 1").fetchone():
                return  # another process sealed them meanwhile
            verdict = _verify_rows(conn)
            if not verdict.ok:
                log.warning("audit: the plain entries stay as they are: the trail does not verify (%s)", verdict.reason)
                return
            rows = conn.execute("SELECT seq, time, synced, kind, detail, sealed FROM audit ORDER BY seq").fetchall()
            head = TrustDB.setting_in(conn, _HEAD)
            prev, plain = GENESIS, 0
            for seq, time, synced, kind, detail_json, sealed in rows:
                if sealed is None:
                    detail_json, sealed = self._stored(seq, kind, json.loads(detail_json))
                    plain += 1
                digest = entry_hash(prev, seq, time, bool(synced), kind, detail_json, sealed)
                conn.execute("UPDATE audit SET detail = ?, sealed = ?, prev = ?, hash = ? WHERE seq = ?",
                             (detail_json, sealed, prev, digest, seq))
                prev = digest
            TrustDB.put_setting(conn, _HEAD, f"{rows[-1][0]}:{prev}")
            self._append(conn, "audit_sealed", {"entries": plain, "old_head": head})
        log.info("audit: sealed %d entries an older version wrote in plain", plain)
        self.db.scrub()

    # -- forwarding to the center (the daemon sends each entry as an `audit` event) ------------
    def unsent(self, limit: int = 100) -> list[AuditEntry]:
        return self.entries(after_seq=int(self.db.setting(_SENT) or 0), limit=limit)

    def mark_sent(self, seq: int) -> None:
        with self.db.write() as conn:
            TrustDB.put_setting(conn, _SENT, str(seq))


def _verify_rows(conn: sqlite3.Connection) -> Verdict:
    """Walk the whole chain inside the caller's transaction; the first entry that does not fit is named."""
    # sealed read as bytes whatever was written there (text that is not UTF-8 must not crash us);
    # its stored type is checked on its own
    rows = conn.execute("SELECT seq, time, synced, kind, detail, prev, hash, CAST(sealed AS BLOB), typeof(sealed) "
                        "FROM audit ORDER BY seq").fetchall()
    head = conn.execute("SELECT value FROM settings WHERE key = ?", (_HEAD,)).fetchone()
    expected_seq, prev = 1, GENESIS
    for seq, time, synced, kind, detail_json, stored_prev, stored_hash, sealed, sealed_type in rows:
        if sealed_type not in ("blob", "null"):
            return Verdict(False, seq - 1, seq, f"entry {seq} was altered (hash mismatch)")
        if seq != expected_seq:
            return Verdict(False, expected_seq - 1, expected_seq, f"entry {expected_seq} is missing (next is {seq})")
        if stored_prev != prev:
            return Verdict(False, seq - 1, seq, f"entry {seq} does not follow entry {seq - 1} (chain broken)")
        if not _well_typed(time, synced, kind, detail_json, sealed) or \
                entry_hash(prev, seq, time, synced, kind, detail_json, sealed) != stored_hash:
            return Verdict(False, seq - 1, seq, f"entry {seq} was altered (hash mismatch)")
        prev, expected_seq = stored_hash, seq + 1
    count = expected_seq - 1
    if head is not None and head[0] != f"{count}:{prev}":
        head_seq_text = head[0].partition(":")[0]
        if not head_seq_text.isdigit():
            return Verdict(False, count, count, f"the recorded head {head[0][:80]!r} is damaged (not <seq>:<hash>)")
        head_seq = int(head_seq_text)
        if head_seq > count:
            return Verdict(False, count, count + 1, f"entries {count + 1}..{head_seq} were removed from the end")
        return Verdict(False, count, head_seq, f"entry {head_seq} does not match the recorded head")
    return Verdict(True, count)

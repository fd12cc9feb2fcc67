"""The audit chain's hash, written once for both sides: the device chains its trail with it
(agent/audit.py) and the center recomputes it over the forwarded entries (center/auditchain.py).

An entry's hash is SHA-256 over the previous entry's hash and the entry's content as the device
stores it: seq, time (as `repr(float)`), the synced flag, kind, the detail column (canonical
JSON: all of a plain-form entry's detail, or only the readable part of a sealed one) and, in
the sealed form, the sealed bytes (hex) with a "v2" tag that keeps the two forms apart. The
first entry's previous hash is GENESIS. Pure: no I/O, no keys; changing anything here changes
every hash every home has ever written.
"""

import hashlib
import json

GENESIS = "0" * 64


def entry_hash(prev: str, seq: int, time: float, synced: bool, kind: str, detail_json: str,
               sealed: bytes | None = None) -> str:
    """SHA-256 over the previous hash and this entry's content as stored (hex)."""
    fields: list = [seq, repr(float(time)), bool(synced), kind, detail_json]
    if sealed is not None:  # the sealed form: its bytes are content too, and "v2" keeps the forms apart
        fields = ["v2", *fields, bytes(sealed).hex()]
    content = json.dumps(fields, separators=(",", ":"))
    return hashlib.sha256(f"{prev}\n{content}".encode()).hexdigest()


def canonical(detail: dict) -> str:
    """The detail column as the device writes it (and so as the hash covers it)."""
    return json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)

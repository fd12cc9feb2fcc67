"""What the center's store holds of the console's passkeys: each staff member's registered
passkeys, and the one-time codes an administrator gives out to register one.

A passkey is registered only with a code: `trygg center passkey-code NAME` makes one (random,
60 bits, valid 24 h by default), prints it once and stores only its SHA-256; the staff member
types it on the page, and it is spent in the same transaction that stores the passkey, so a code
registers one passkey, once. Registering adds a passkey beside the others and never replaces
one; `trygg center passkeys NAME [--remove ID]` lists and removes them.

Readable in the store (migrations step 6): a passkey's credential id, its signature counter and
times; a code's digest and times. The staff member's name, the passkey's public key, its relying
party (the console's host) and authenticator model are sealed to the center key like every staff
name in the store (atrest.Sealer). A member's passkeys are found by opening the rows: a center has
tens to hundreds of them, and a name seen once is remembered (a row's owner never changes).
This module never decides a sign-in (signin.py does); it keeps what was decided.
"""

import base64
import hashlib
import secrets
import threading
from dataclasses import dataclass

from base.errors import TryggError

from ..atrest import Sealer
from ..db import Database

PASSKEY_CONTEXT = "trygg-center/v1/passkey/"
CODE_VALID_H = 24.0
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L: read out on the phone at night
CODE_LEN = 12  # ~59 bits: guessing one within a day is out of reach


class CodeRefused(TryggError, ValueError):
    """The registration code does not check out; `code` says which way (bad_code, code_expired, code_used)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Passkey:
    id: str  # the credential id, base64url as WebAuthn writes it
    staff: str
    public_key: bytes  # COSE, as the authenticator gave it at registration
    rp_id: str  # the console's host it was made for
    sign_count: int
    created: float
    last_used: float | None
    aaguid: str = ""  # the authenticator's model, if it says

    def to_json(self) -> dict:
        return {"id": self.id, "staff": self.staff, "rp_id": self.rp_id, "sign_count": self.sign_count,
                "created": self.created, "last_used": self.last_used, "aaguid": self.aaguid}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def normalize_code(text: str) -> str:
    return "".join(ch for ch in text.upper() if ch.isalnum())


def _digest(code: str) -> str:
    return hashlib.sha256(b"trygg-console-passkey-code\0" + normalize_code(code).encode()).hexdigest()


class PasskeyStore:
    def __init__(self, db: Database, sealer: Sealer) -> None:
        self.db = db
        self.sealer = sealer
        self._owner: dict[str, str] = {}  # credential id -> staff name, once opened
        self._lock = threading.Lock()

    # -- one-time codes ----------------------------------------------------------------------------
    def issue_code(self, name: str, now: float, valid_h: float = CODE_VALID_H) -> tuple[str, float]:
        """A new code for name, shown once (only its digest is kept), and when it expires."""
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LEN))
        expires = now + valid_h * 3600
        sealed = self.sealer.seal("code/" + _digest(code), {"staff": name})
        with self.db.tx() as tx:
            tx.execute("DELETE FROM passkey_codes WHERE expires < ?", (now - 7 * 86400,))  # long dead: no use kept
            tx.execute("INSERT INTO passkey_codes (digest, sealed, expires, used) VALUES (?, ?, ?, NULL)",
                       (_digest(code), sealed, expires))
        return "-".join(code[i:i + 4] for i in range(0, CODE_LEN, 4)), expires

    def check_code(self, name: str, code: str, now: float) -> str:
        """The code's digest if it is name's, unspent and in date; CodeRefused otherwise."""
        digest = _digest(code)
        row = self.db.one("SELECT sealed, expires, used FROM passkey_codes WHERE digest = ?", (digest,))
        owner = self.sealer.open("code/" + digest, bytes(row[0])) if row else None
        if row is None or owner is None or owner.get("staff") != name:
            raise CodeRefused(f"this is not a passkey code for {name}: check it, or ask for a new one", "bad_code")
        if row[2] is not None:
            raise CodeRefused("this passkey code was already used: ask for a new one", "code_used")
        if row[1] < now:
            raise CodeRefused("this passkey code has expired: ask for a new one", "code_expired")
        return digest

    # -- passkeys ----------------------------------------------------------------------------------
    def add(self, name: str, code: str, key: Passkey, now: float) -> None:
        """Store a verified passkey for name and spend the code, in one transaction: both or neither."""
        digest = self.check_code(name, code, now)
        sealed = self.sealer.seal("key/" + key.id, {"staff": name, "public_key": b64url(key.public_key),
                                                    "rp_id": key.rp_id, "aaguid": key.aaguid})
        with self.db.tx() as tx:
            if tx.execute("UPDATE passkey_codes SET used = ? WHERE digest = ? AND used IS NULL AND expires >= ?",
                          (now, digest, now)).rowcount != 1:
                raise CodeRefused("this passkey code was already used: ask for a new one", "code_used")
            if tx.execute("SELECT 1 FROM staff_passkeys WHERE id = ?", (key.id,)).fetchone():
                raise CodeRefused("this passkey is already registered", "passkey_exists")
            tx.execute("INSERT INTO staff_passkeys (id, sealed, sign_count, created, last_used) VALUES (?,?,?,?,NULL)",
                       (key.id, sealed, key.sign_count, now))

    def _open(self, row) -> Passkey | None:
        key_id, sealed, sign_count, created, last_used = row
        data = self.sealer.open("key/" + key_id, bytes(sealed))
        if data is None:
            return None
        with self._lock:
            self._owner[key_id] = data["staff"]
        return Passkey(key_id, data["staff"], base64.urlsafe_b64decode(data["public_key"] + "=="), data["rp_id"],
                       int(sign_count), created, last_used, data.get("aaguid", ""))

    def get(self, key_id: str) -> Passkey | None:
        row = self.db.one("SELECT id, sealed, sign_count, created, last_used FROM staff_passkeys WHERE id = ?",
                          (key_id,))
        return self._open(row) if row else None

    def of(self, name: str) -> list[Passkey]:
        """name's passkeys, oldest first."""
        rows = self.db.query("SELECT id, sealed, sign_count, created, last_used FROM staff_passkeys ORDER BY created")
        with self._lock:
            known = dict(self._owner)
        keys = [self._open(row) for row in rows if known.get(row[0], name) == name]
        return [k for k in keys if k is not None and k.staff == name]

    def owner(self, key_id: str) -> str | None:
        """Whose passkey this is, while it is registered (checked on every request of a session)."""
        if self.db.one("SELECT 1 FROM staff_passkeys WHERE id = ?", (key_id,)) is None:
            return None
        with self._lock:
            known = self._owner.get(key_id)
        if known is not None:
            return known
        key = self.get(key_id)
        return key.staff if key else None

    def used(self, key: Passkey, new_count: int, now: float) -> bool:
        """Record a sign-in with key: the counter moves from what was checked to new_count. False when
        another sign-in moved it meanwhile (the same passkey twice at once: a copy of it)."""
        with self.db.tx() as tx:
            return tx.execute("UPDATE staff_passkeys SET sign_count = ?, last_used = ? WHERE id = ? AND sign_count = ?",
                              (new_count, now, key.id, key.sign_count)).rowcount == 1

    def remove(self, name: str, key_id: str) -> list[str]:
        """Remove name's passkey whose id starts with key_id ("all": every one of them); the ids removed."""
        mine = self.of(name)
        gone = [k.id for k in mine if key_id == "all" or k.id.startswith(key_id)]
        if key_id != "all" and len(gone) != 1:
            raise TryggError(f"{name} has {'no passkey' if not gone else 'several passkeys'} starting {key_id!r}: "
                             f"`trygg center passkeys {name}` lists them")
        with self.db.tx() as tx:
            for key in gone:
                tx.execute("DELETE FROM staff_passkeys WHERE id = ?", (key,))
        return gone

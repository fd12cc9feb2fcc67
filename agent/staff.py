"""Staff enrollment on the device: whose signed commands this home accepts, and in which role.

A technician enrolls a staff member's public key file (made by `trygg center staff-key`)
with a role from the config's [roles]. Removing a member revokes the key but keeps the row,
so the audit trail can still name who a refused command came from. Every change is audited
in the same transaction as the change itself. The daemon sees changes made by the CLI at
the next command (SQLite's data_version tells it another connection wrote).

What the device needs of a staff member, and how it is kept. Commands name their signer by key
id, so judging a command needs only the key id, the public key, the role and whether it is
revoked: those are plain in trust.db. The name is needed by people, not by the decision: the
technician's `trygg staff list / remove NAME`, and the signed result that tells the center who
acted. So the name is kept sealed to this device's own key (trustdb.AtRest), opened only when
shown, and found by a salted digest (`name` column) for `remove NAME` and duplicate checks; the
copy of the public key file is stored without the name it carries. The audit entries that say
who did what are sealed to the center, not to the device. What this buys: trust.db on its own
(a copy, a backup, a support dump, `sqlite3 trust.db .dump`) names nobody. What it cannot buy:
a whole stolen SD card also holds device.key, and a device that must show a technician on site
who is enrolled, with no secret from elsewhere, can show it to whoever holds the card; the
names of the enrolled staff are the price, never who did what, or when.
A trust.db from an older version (plain names) is read as it is and sealed when a holder of
the keys opens it (`StaffRegistry` with an AtRest).
"""

import hashlib
import json
import secrets
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ed25519

from .audit import AuditLog
from base.errors import ConfigError, KeyFileError
from base.keys import PublicIdentity, check_name, parse_public
from protocol.envelope import signer_kid
from .trustdb import TrustDB



@dataclass(frozen=True)
class StaffMember:
    name: str
    role: str
    kid: str
    public: PublicIdentity
    enrolled_at: float
    revoked_at: float | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_json(self) -> dict:
        return {"name": self.name, "role": self.role, "kid": self.kid, "enrolled_at": self.enrolled_at,
                "revoked_at": self.revoked_at, "active": self.active}




_SALT = "staff_name_salt"


class StaffRegistry:
    def __init__(self, db: TrustDB, audit: AuditLog, roles: dict[str, list[str]]) -> None:
        self.db = db
        self.audit = audit
        self.roles = roles
        self._version: int | None = None
        self._by_kid: dict[bytes, StaffMember] = {}
        if db.at_rest is not None and db.read("SELECT 1 FROM staff WHERE name_box IS NULL LIMIT 1"):
            self._seal_names()

    # -- names at rest (see the module docstring) ---------------------------------------------
    def _key(self, conn, name: str) -> str:
        """The `name` column for a name: a salted digest when names are sealed, else the name."""
        if self.db.at_rest is None:
            return name
        salt = TrustDB.setting_in(conn, _SALT)
        if salt is None:
            salt = secrets.token_hex(16)
            TrustDB.put_setting(conn, _SALT, salt)
        return "~" + hashlib.sha256(f"{salt}\x00{name}".encode()).hexdigest()[:32]  # "~": never a valid name

    def _row_values(self, conn, name: str, public: PublicIdentity) -> tuple[str, str, bytes | None]:
        """(name column, public column, name_box) as stored for this member."""
        data = public.to_json()
        if self.db.at_rest is None:
            return name, json.dumps(data, sort_keys=True), None
        data["name"] = ""  # the .pub file's own copy of the name is not kept
        return self._key(conn, name), json.dumps(data, sort_keys=True), self.db.at_rest.for_device("staff", name.encode())

    def _name(self, column: str, box: bytes | None) -> str:
        if box is None:
            return column
        if self.db.at_rest is None:
            return "(sealed)"  # opened without the device key: the name is not readable here
        return self.db.at_rest.open_device("staff", box).decode()

    def _seal_names(self) -> None:
        """Seal the names an older version (or a registry without AtRest) wrote in plain."""
        with self.db.write() as conn:
            rows = conn.execute("SELECT name, public FROM staff WHERE name_box IS NULL").fetchall()
            for name, public in rows:
                key, text, box = self._row_values(conn, name, parse_public(json.loads(public), f"staff {name}"))
                conn.execute("UPDATE staff SET name = ?, public = ?, name_box = ? WHERE name = ?", (key, text, box, name))
        self.db.scrub()

    # -- changes (technician) -----------------------------------------------------------------
    def add(self, name: str, public: PublicIdentity, role: str, force: bool = False) -> StaffMember:
        check_name(name)
        if role not in self.roles:
            raise ConfigError(f"--role must be one of {', '.join(sorted(self.roles))} (from [roles] in the config), got {role!r}")
        kid = signer_kid(public.sign).hex()
        with self.db.write() as conn:
            key, text, box = self._row_values(conn, name, public)
            row = conn.execute("SELECT revoked_at FROM staff WHERE name = ?", (key,)).fetchone()
            if row is not None and row[0] is None and not force:
                raise ConfigError(f"staff member {name!r} is already enrolled; use --force to replace the key or role")
            holder = conn.execute("SELECT name, name_box FROM staff WHERE kid = ? AND revoked_at IS NULL AND name != ?",
                                  (kid, key)).fetchone()
            if holder:
                raise KeyFileError(f"this key is already enrolled for {self._name(*holder)!r}; "
                                   "every person needs their own key")
            now = self.audit.clock.time()
            conn.execute("INSERT INTO staff (name, role, kid, public, enrolled_at, revoked_at, name_box) "
                         "VALUES (?,?,?,?,?,NULL,?) ON CONFLICT(name) DO UPDATE SET role=excluded.role, kid=excluded.kid, "
                         "public=excluded.public, enrolled_at=excluded.enrolled_at, revoked_at=NULL, "
                         "name_box=excluded.name_box", (key, role, kid, text, now, box))
            self.audit.append("staff_added", {"name": name, "role": role, "kid": kid, "replaced": row is not None}, conn)
        self._version = None  # our own writes do not change data_version for this connection
        return self.get(name)

    def remove(self, name: str) -> StaffMember:
        with self.db.write() as conn:
            key = self._key(conn, name)
            row = conn.execute("SELECT revoked_at, role, kid FROM staff WHERE name = ?", (key,)).fetchone()
            if row is None or row[0] is not None:
                raise ConfigError(f"no enrolled staff member named {name!r} (see trygg staff list)")
            conn.execute("UPDATE staff SET revoked_at = ? WHERE name = ?", (self.audit.clock.time(), key))
            self.audit.append("staff_removed", {"name": name, "role": row[1], "kid": row[2]}, conn)
        self._version = None
        return self.get(name)

    # -- lookups (daemon) ---------------------------------------------------------------------
    def members(self) -> list[StaffMember]:
        rows = self.db.read("SELECT name, role, kid, public, enrolled_at, revoked_at, name_box FROM staff")
        members = [StaffMember(self._name(n, b), r, k, parse_public(json.loads(p), f"staff key {k}"), e, x)
                   for n, r, k, p, e, x, b in rows]
        return sorted(members, key=lambda m: m.name)

    def get(self, name: str) -> StaffMember | None:
        return next((m for m in self.members() if m.name == name), None)

    def by_kid(self, kid: bytes) -> StaffMember | None:
        """The member whose signing key has this id (active members win over revoked ones)."""
        version = self.db.read("PRAGMA data_version")[0][0]
        if version != self._version:
            members = sorted(self.members(), key=lambda m: m.active)  # active last, so they win
            self._by_kid = {bytes.fromhex(m.kid): m for m in members}
            self._version = version
        return self._by_kid.get(bytes(kid))

    def signer_lookup(self, kid: bytes) -> ed25519.Ed25519PublicKey | None:
        """For envelope.open_sealed: any enrolled key verifies; revocation is judged after."""
        member = self.by_kid(kid)
        return member.public.sign if member else None


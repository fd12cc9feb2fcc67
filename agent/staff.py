"""Staff enrollment on the device: whose signed commands this home accepts, and in which role.

A technician enrolls a staff member's public key file (made by `trygg center staff-key`)
with a role from the config's [roles]. Removing a member revokes the key but keeps the row,
so the audit trail can still name who a refused command came from. Every change is audited
in the same transaction as the change itself. The daemon sees changes made by the CLI at
the next command (SQLite's data_version tells it another connection wrote).
"""

import json
import re
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ed25519

from .audit import AuditLog
from .errors import ConfigError, KeyFileError
from .keys import PublicIdentity, parse_public
from .protocol.envelope import signer_kid
from .trustdb import TrustDB

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
NAME_RULE = "1-63 characters a-z, 0-9, '.', '_' and '-', starting with a letter or digit"


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


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ConfigError(f"staff name must be {NAME_RULE}, got {name!r}")
    return name


class StaffRegistry:
    def __init__(self, db: TrustDB, audit: AuditLog, roles: dict[str, list[str]]) -> None:
        self.db = db
        self.audit = audit
        self.roles = roles
        self._version: int | None = None
        self._by_kid: dict[bytes, StaffMember] = {}

    # -- changes (technician) -----------------------------------------------------------------
    def add(self, name: str, public: PublicIdentity, role: str, force: bool = False) -> StaffMember:
        check_name(name)
        if role not in self.roles:
            raise ConfigError(f"--role must be one of {', '.join(sorted(self.roles))} (from [roles] in the config), got {role!r}")
        kid = signer_kid(public.sign).hex()
        text = json.dumps(public.to_json(), sort_keys=True)
        with self.db.write() as conn:
            row = conn.execute("SELECT revoked_at FROM staff WHERE name = ?", (name,)).fetchone()
            if row is not None and row[0] is None and not force:
                raise ConfigError(f"staff member {name!r} is already enrolled; use --force to replace the key or role")
            holder = conn.execute("SELECT name FROM staff WHERE kid = ? AND revoked_at IS NULL AND name != ?",
                                  (kid, name)).fetchone()
            if holder:
                raise KeyFileError(f"this key is already enrolled for {holder[0]!r}; every person needs their own key")
            now = self.audit.clock.time()
            conn.execute("INSERT INTO staff (name, role, kid, public, enrolled_at, revoked_at) VALUES (?,?,?,?,?,NULL) "
                         "ON CONFLICT(name) DO UPDATE SET role=excluded.role, kid=excluded.kid, public=excluded.public, "
                         "enrolled_at=excluded.enrolled_at, revoked_at=NULL", (name, role, kid, text, now))
            self.audit.append("staff_added", {"name": name, "role": role, "kid": kid, "replaced": row is not None}, conn)
        self._version = None  # our own writes do not change data_version for this connection
        return self.get(name)

    def remove(self, name: str) -> StaffMember:
        with self.db.write() as conn:
            row = conn.execute("SELECT revoked_at, role, kid FROM staff WHERE name = ?", (name,)).fetchone()
            if row is None or row[0] is not None:
                raise ConfigError(f"no enrolled staff member named {name!r} (see trygg staff list)")
            conn.execute("UPDATE staff SET revoked_at = ? WHERE name = ?", (self.audit.clock.time(), name))
            self.audit.append("staff_removed", {"name": name, "role": row[1], "kid": row[2]}, conn)
        self._version = None
        return self.get(name)

    # -- lookups (daemon) ---------------------------------------------------------------------
    def members(self) -> list[StaffMember]:
        rows = self.db.read("SELECT name, role, kid, public, enrolled_at, revoked_at FROM staff ORDER BY name")
        return [StaffMember(n, r, k, parse_public(json.loads(p), f"staff {n}"), e, x) for n, r, k, p, e, x in rows]

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


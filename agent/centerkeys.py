"""The center's public keys on a device: the current one, and the next one during a rotation.

Events are sealed to the active center key. During a rotation a technician installs the
center's next public key beside the current one (`trygg center-key stage`); acks signed by
either are accepted, and a signed `switch_center_key` command naming the next key's id makes
it the active one. The choice is kept in trust.db, so it survives restarts. Once every home
has switched, the next key file replaces center.pub (docs/operations.md).
"""

import logging
from pathlib import Path

from .audit import AuditLog
from .keys import PublicIdentity, load_public
from .protocol.envelope import signer_kid
from .trustdb import TrustDB

log = logging.getLogger(__name__)
_ACTIVE = "center_active"


def center_kid(public: PublicIdentity) -> str:
    return signer_kid(public.sign).hex()


class CenterKeys:
    def __init__(self, current: Path, next_path: Path, db: TrustDB) -> None:
        self.db = db
        self.next_path = Path(next_path)
        self.current = load_public(current)
        self.next = load_public(next_path) if Path(next_path).exists() else None
        chosen = db.setting(_ACTIVE)
        if self.next is not None and chosen == center_kid(self.next):
            self.active = self.next
        else:
            if chosen not in (None, center_kid(self.current)):
                log.warning("the switched-to center key %s is no longer installed; sealing to center.pub", chosen)
            self.active = self.current

    def all(self) -> list[PublicIdentity]:
        """Every center key whose signature we accept (acks)."""
        return [k for k in (self.current, self.next) if k is not None]

    def switch(self, kid: str, audit: AuditLog) -> PublicIdentity:
        """Make the next key active; raise ValueError naming why not. Re-reads the next key file,
        so a key staged while the daemon runs can be switched to without a restart."""
        if self.next_path.exists():
            self.next = load_public(self.next_path)
        if self.next is None:
            raise ValueError("no next center key is installed on this device (trygg center-key stage)")
        if kid != center_kid(self.next):
            raise ValueError(f"the installed next center key is {center_kid(self.next)}, not {kid}")
        with self.db.write() as conn:
            TrustDB.put_setting(conn, _ACTIVE, kid)
            audit.append("center_key_switched", {"from": center_kid(self.active), "to": kid}, conn)
        self.active = self.next
        return self.active

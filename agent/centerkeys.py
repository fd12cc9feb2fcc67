"""The center's public keys on a device: the current one, and the next one during a rotation.

Events are sealed to the active center key. During a rotation a technician installs the
center's next public key beside the current one (`trygg center-key stage`, picked up while
the daemon runs); acks signed by either are accepted, and a signed `switch_center_key`
command naming the next key's id makes it the active one. The switch is kept in trust.db
together with a copy of the key, so it survives restarts and cannot be undone by the order in
which a technician later tidies the key files (docs/operations.md).
"""

import json
import logging
import os
from pathlib import Path

from .audit import AuditLog
from base.keys import PublicIdentity, center_kid, load_public, parse_public  # noqa: F401 - center_kid for the daemon
from .trustdb import TrustDB

log = logging.getLogger(__name__)
_ACTIVE = "center_active"
_ACTIVE_KEY = "center_active_key"


class CenterKeys:
    def __init__(self, current: Path, next_path: Path, db: TrustDB) -> None:
        self.db = db
        self.next_path = Path(next_path)
        self.current = load_public(current)
        self.next: PublicIdentity | None = None
        self._next_stamp: int | None = None
        self._refresh_next()
        self.active = self._chosen(db.setting(_ACTIVE))

    def _chosen(self, kid: str | None) -> PublicIdentity:
        for key in (self.current, self.next):
            if key is not None and center_kid(key) == kid:
                return key
        saved = self.db.setting(_ACTIVE_KEY)
        if kid is not None and saved:
            key = parse_public(json.loads(saved), "trust.db center_active_key")
            if center_kid(key) == kid:
                log.info("sealing to the switched-to center key %s kept in trust.db", kid)
                return key
        return self.current

    def _refresh_next(self) -> None:
        """Read center.next.pub again when it appeared, changed or went away (one stat)."""
        try:
            stamp = os.stat(self.next_path).st_mtime_ns
        except OSError:
            stamp = None
        if stamp != self._next_stamp:
            self._next_stamp = stamp
            self.next = load_public(self.next_path) if stamp is not None else None

    def all(self) -> list[PublicIdentity]:
        """Every center key whose signature we accept (acks): current, next, and the active one."""
        self._refresh_next()
        keys = [k for k in (self.current, self.next, self.active) if k is not None]
        return list({center_kid(k): k for k in keys}.values())

    def switch(self, kid: str, audit: AuditLog) -> PublicIdentity:
        """Make the next key active; raise ValueError naming why not."""
        self._refresh_next()
        if self.next is None:
            raise ValueError("no next center key is installed on this device (trygg center-key stage)")
        if kid != center_kid(self.next):
            raise ValueError(f"the installed next center key is {center_kid(self.next)}, not {kid}")
        with self.db.write() as conn:
            TrustDB.put_setting(conn, _ACTIVE, kid)
            TrustDB.put_setting(conn, _ACTIVE_KEY, json.dumps(self.next.to_json()))
            audit.append("center_key_switched", {"from": center_kid(self.active), "to": kid}, conn)
        self.active = self.next
        return self.active

"""Enrolled homes: whose keys we trust, and the replay rule for their signed statuses.

A home's public key file (written by `trygg init` on the device) is enrolled into the
center's homes directory as <home>.pub; a message on a home's topic must be signed by that
home's key, so one home can never speak for another. A status is accepted only if it is newer
than the last accepted ones (the replay marks, kept in the store across restarts); what a
home's presence is (online, offline, silent) is decided in the store (store.py).
"""

import logging
from dataclasses import dataclass
from pathlib import Path

from base.errors import KeyFileError
from base.keys import PublicIdentity, load_public
from protocol.envelope import signer_kid
from protocol.topics import check_home_id

log = logging.getLogger(__name__)


@dataclass
class Presence:
    """A home's replay marks: the device times of the newest accepted statuses. Presence itself
    (online, offline, silent) is state in the store (store.set_presence, store.mark_silent)."""

    last_online_time: float = 0.0
    last_offline_time: float = 0.0


class HomeRegistry:
    def __init__(self, homes_dir: Path, replay_marks: dict[str, tuple[float, float]] | None = None) -> None:
        self.homes_dir = Path(homes_dir)
        self.keys: dict[str, PublicIdentity] = {}
        self.presence: dict[str, Presence] = {
            home: Presence(last_online_time=on, last_offline_time=off) for home, (on, off) in (replay_marks or {}).items()
        }
        self.marks_changed: set[str] = set()  # homes whose replay marks the owner should persist
        self._dir_stamp: int | None = None
        self.reload()

    def reload(self) -> None:
        """Read every <home>.pub in the homes directory; a bad file is logged and skipped."""
        keys = {}
        for path in sorted(self.homes_dir.glob("*.pub")):
            try:
                public = load_public(path)
                check_home_id(public.name)
                if public.name != path.stem:  # a stray copy (old-hem-1.pub) must not take a home over
                    raise ValueError(f"the key is for home {public.name!r}, not {path.stem!r}: "
                                     f"a home's key is <home>.pub (enroll with trygg center add-home)")
            except (KeyFileError, ValueError) as exc:
                log.error("skipping home key %s: %s", path, exc)
                continue
            keys[public.name] = public
        self.keys = keys
        self._dir_stamp = self._stamp()

    def refresh(self) -> None:
        """Re-read the homes directory if it changed: a home enrolled, re-keyed with
        `add-home --force`, or removed while we run. One stat() when nothing changed."""
        if self._stamp() != self._dir_stamp:
            self.reload()

    def _stamp(self) -> int | None:
        try:
            return self.homes_dir.stat().st_mtime_ns
        except OSError:
            return None

    def signer_for(self, home: str):
        """A lookup that only accepts the given home's own signing key.

        Call refresh() first (once per batch) to see homes enrolled, re-keyed or removed since.
        """
        public = self.keys.get(home)

        def lookup(kid: bytes):
            return public.sign if public is not None and kid == signer_kid(public.sign) else None

        return lookup

    def accept_status(self, home: str, state: str, stamp: float) -> bool:
        """The replay rule, and the status noted when it passes (is_new_status, then note_status)."""
        if not self.is_new_status(home, state, stamp):
            return False
        self.note_status(home, state, stamp)
        return True

    def is_new_status(self, home: str, state: str, stamp: float) -> bool:
        """Replay rule: online must be newer than anything seen; offline newer than the last offline.

        The last will is stamped when its session starts, before that session's heartbeats, so
        an offline is compared only with earlier offlines. A replayed old online is ignored.
        """
        p = self.presence.get(home, Presence())
        if state == "offline":
            return stamp > p.last_offline_time
        return stamp > max(p.last_online_time, p.last_offline_time)

    def note_status(self, home: str, state: str, stamp: float) -> None:
        """A status taken in (stored): later copies of it, or older ones, are replays."""
        p = self.presence.setdefault(home, Presence())
        if state == "offline":
            p.last_offline_time = stamp
        else:
            p.last_online_time = stamp
        self.marks_changed.add(home)

    def take_changed_marks(self) -> dict[str, tuple[float, float]]:
        """Replay marks changed since the last call, for the owner to store durably."""
        out = {h: (self.presence[h].last_online_time, self.presence[h].last_offline_time) for h in self.marks_changed}
        self.marks_changed.clear()
        return out

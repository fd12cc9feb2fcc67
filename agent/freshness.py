"""Is a command fresh and new? The time window, the challenge, and the replay cache on disk.

A command names when it was issued and when it expires. With a synchronized clock the device
checks that window (allowing clock_skew_s). A Pi has no real-time clock: after a power cut
while offline its time is stale, and a time check would be meaningless, so then a command is
fresh only if it echoes the device's current challenge: 16 random bytes, published in the
signed retained status, replaced after every command that used it and every challenge_ttl_s
(the previous one stays good for a short grace after a timed change, so a command already
on its way is not refused). Whatever the clock, a command id is accepted once: ids go into
the replay cache (trust.db) before anything acts, and are pruned only after they expired by
a synchronized clock. Nothing here acts on a command; it only judges.
"""

import secrets
from typing import Callable

from .config import CommandsConfig
from protocol.messages import CommandMessage
from protocol.refusals import Refusal
from .trustdb import TrustDB

GRACE_S = 60.0  # a timed-out challenge stays good this long
MAX_REMEMBERED = 100_000  # commands are rare; this bounds a flood of validly signed ones


class Freshness:
    def __init__(self, db: TrustDB, clock, cfg: CommandsConfig, on_new_challenge: Callable[[], None] = lambda: None,
                 token: Callable[[], str] = lambda: secrets.token_hex(16)) -> None:
        self.db = db
        self.clock = clock
        self.cfg = cfg
        self.on_new_challenge = on_new_challenge
        self._token = token
        self._previous: tuple[str, float] | None = None  # (challenge, good until, monotonic)
        self._challenge = token()
        self._renew_at = clock.monotonic() + cfg.challenge_ttl_s

    @property
    def challenge(self) -> str:
        return self._challenge

    def tick(self) -> None:
        """Replace the challenge when it is due (called every second by the daemon)."""
        if self.clock.monotonic() >= self._renew_at:
            self._previous = (self._challenge, self.clock.monotonic() + GRACE_S)
            self._renew()

    def _renew(self) -> None:
        self._challenge = self._token()
        self._renew_at = self.clock.monotonic() + self.cfg.challenge_ttl_s
        self.on_new_challenge()

    def _challenge_matches(self, value: str) -> bool:
        if secrets.compare_digest(value, self._challenge):
            return True
        prev = self._previous
        return prev is not None and self.clock.monotonic() < prev[1] and secrets.compare_digest(value, prev[0])

    def refusal(self, cmd: CommandMessage) -> Refusal | None:
        """Why this command is not fresh (its code: protocol/refusals.FRESHNESS), or None. No side
        effects. Every bound is inclusive: a lifetime of exactly max_lifetime_s, and a clock exactly
        clock_skew_s before `issued` or after `expires`, are fresh."""
        issued, expires = cmd.issued.timestamp(), cmd.expires.timestamp()
        if expires <= issued:
            return Refusal("order", "expires before it was issued")
        if expires - issued > self.cfg.max_lifetime_s:
            return Refusal("lifetime",
                           f"lifetime {expires - issued:.0f} s exceeds the allowed {self.cfg.max_lifetime_s:.0f} s")
        if cmd.challenge is not None and not self._challenge_matches(cmd.challenge):
            return Refusal("challenge", "stale or wrong challenge (read the home's status again)")
        if not self.clock.synced():
            if cmd.challenge is None:
                return Refusal("unsynced", "device clock not synchronized: the command must echo the challenge "
                                           "from the home's status")
            return None
        now, skew = self.clock.time(), self.cfg.clock_skew_s
        if now < issued - skew:
            return Refusal("future", f"issued {issued - now:.0f} s in the future by the device's clock")
        if now > expires + skew:
            return Refusal("expired", f"expired {now - expires:.0f} s ago by the device's clock")
        return None

    def seen(self, command_id: str) -> bool:
        """Was this id received before (and not yet pruned)?"""
        return bool(self.db.read("SELECT 1 FROM seen_commands WHERE id = ?", (command_id,)))

    def remember(self, cmd: CommandMessage) -> bool:
        """Record the id durably; False when it was seen before (a replay). Uses up the challenge."""
        keep_until = cmd.expires.timestamp() + self.cfg.clock_skew_s
        with self.db.write() as conn:
            cur = conn.execute("INSERT OR IGNORE INTO seen_commands (id, seen_at, keep_until) VALUES (?,?,?)",
                               (cmd.id, self.clock.time(), keep_until))
            new = cur.rowcount == 1
        if new and cmd.challenge is not None:
            if secrets.compare_digest(cmd.challenge, self._challenge):
                self._renew()
            elif self._previous is not None and secrets.compare_digest(cmd.challenge, self._previous[0]):
                self._previous = None  # used up like the current one
        return new

    def prune(self) -> int:
        """Forget ids that expired by a synchronized clock; cap the cache size whatever the clock."""
        removed = 0
        with self.db.write() as conn:
            if self.clock.synced():
                removed += conn.execute("DELETE FROM seen_commands WHERE keep_until < ?", (self.clock.time(),)).rowcount
            count = conn.execute("SELECT COUNT(*) FROM seen_commands").fetchone()[0]
            if count > MAX_REMEMBERED:
                removed += conn.execute(
                    "DELETE FROM seen_commands WHERE id IN (SELECT id FROM seen_commands ORDER BY keep_until LIMIT ?)",
                    (count - MAX_REMEMBERED,)).rowcount
        return removed

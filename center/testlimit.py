"""Test traffic per home, limited at the receiving side too: a home (or a broken installer's
script) that floods tests gets its excess acknowledged, so it stops re-sending, but neither
recorded nor shown: one line says how many were over the limit. Real alarms never pass here."""

from base.ratelimit import TokenBucket

TESTS_BURST = 30  # more than a device lets out at once (agent/control.py: 10)
TESTS_PER_S = 1 / 6


class TestLimit:
    __test__ = False  # not a pytest class

    def __init__(self, burst: int = TESTS_BURST, per_s: float = TESTS_PER_S) -> None:
        self.burst, self.per_s = burst, per_s
        self._homes: dict[str, TokenBucket] = {}

    def allow(self, home: str, now: float) -> bool:
        bucket = self._homes.get(home)
        if bucket is None:
            bucket = self._homes[home] = TokenBucket(self.burst, self.per_s, now)
        return bucket.take(1, now)

    def forget_full(self, now: float) -> None:
        """Drop the homes whose bucket has refilled: memory stays with the homes testing now."""
        self._homes = {home: b for home, b in self._homes.items() if not b.full(now)}

    def rule(self) -> str:
        return f"{self.burst} at once, then one every {1 / self.per_s:g} s"

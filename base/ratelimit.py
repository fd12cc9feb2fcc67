"""A token bucket: at most `burst` at once, refilled at `per_s` a second. Pure bookkeeping:
times are the caller's monotonic seconds. Used to keep test traffic from flooding anyone."""


class TokenBucket:
    def __init__(self, burst: int, per_s: float, now: float) -> None:
        if burst < 1 or per_s <= 0:
            raise ValueError("a token bucket needs burst >= 1 and a positive rate")
        self.burst, self.per_s = burst, per_s
        self._tokens, self._at = float(burst), now

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst, self._tokens + max(0.0, now - self._at) * self.per_s)
        self._at = max(self._at, now)

    def take(self, n: int, now: float) -> bool:
        """Take n tokens if all n are there; False (and nothing taken) when not."""
        self._refill(now)
        if n > self._tokens:
            return False
        self._tokens -= n
        return True

    def wait_s(self, n: int, now: float) -> float:
        """How long until n tokens are there (inf when n is more than the bucket holds)."""
        self._refill(now)
        if n > self.burst:
            return float("inf")
        return max(0.0, (n - self._tokens) / self.per_s)

    def full(self, now: float) -> bool:
        """Back to its burst: nothing to remember about it any more."""
        self._refill(now)
        return self._tokens >= self.burst

"""Rows and a clock for the outbox's own tests (tests/test_outbox*.py)."""

from agent.outbox import ROW_OVERHEAD, Row
from protocol import topics

HOME = "hem-1"
T0 = 1_750_000_000.0  # 2025-06-15: a synchronized wall clock
TTL = {"event": 3600.0, "telemetry": 600.0}
PAYLOAD = 100
ROW_COST = PAYLOAD + ROW_OVERHEAD


class FakeClock:
    """Wall clock the test moves by hand."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def row(cls: str, n: int, created: float = T0, size: int = PAYLOAD) -> Row:
    return Row(f"{cls}-{n:05d}", cls, topics.up(HOME, cls), bytes([n % 251]) * size, created)


def ids(rows) -> list[str]:
    return [r.id for r in rows]

"""Events as drivers produce them: a class, a kind and a body; nothing else.

Drivers import only this module from the agent, so it imports no crypto, storage or network
code. Ids, times, signing and sealing are added by the agent (sealer.py).
"""

import re
from dataclasses import dataclass, field
from typing import Any, Callable

CLASSES = ("alarm", "event", "telemetry")  # most important first
KIND_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
_KIND_RE = re.compile(KIND_PATTERN)


@dataclass(frozen=True)
class Event:
    """What a driver emits: no ids, no crypto, no transport."""

    cls: str
    kind: str
    body: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.cls not in CLASSES:
            raise ValueError(f"class must be one of {', '.join(CLASSES)}, got {self.cls!r}")
        if not isinstance(self.kind, str) or not _KIND_RE.fullmatch(self.kind):
            raise ValueError(f"kind must be 1-40 characters a-z, 0-9 and '_', starting with a letter, got {self.kind!r}")


Emit = Callable[[Event], Any]

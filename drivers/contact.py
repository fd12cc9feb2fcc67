"""A debounced digital input: its stable state changes only after the pin held the new level for
debounce_s, timed on the injected clock (not gpiozero's bounce_time, which uses real time).

The pin is read when the driver looks; an edge only makes it look sooner. `active` is the
named condition (pressed, bolt thrown, door closed), whatever the electrical level.
"""

from gpiozero import DigitalInputDevice


class Contact:
    def __init__(self, device: DigitalInputDevice, wiring, debounce_s: float) -> None:
        self.device = device
        self.wiring = wiring
        self.debounce_s = debounce_s
        # gpiozero's pull-up means "active low"; an explicit other level inverts that reading.
        self._invert = (wiring.pull == "up" and wiring.active_high) or (wiring.pull == "down" and not wiring.active_high)
        self.stable: bool | None = None  # unknown until the first update
        self.since = 0.0  # when the stable state began (the first edge of it, not its settling)
        self._pending: bool | None = None
        self._pending_since = 0.0

    @property
    def raw(self) -> bool:
        return bool(self.device.value) != self._invert

    def update(self, now: float) -> bool:
        """Read the pin; True when the stable state changed (also the first reading)."""
        raw = self.raw
        if self.stable is None:
            self.stable, self.since, self._pending = raw, now, None
            return True
        if raw == self.stable:
            self._pending = None
            return False
        if self._pending != raw:
            self._pending, self._pending_since = raw, now
        if now - self._pending_since >= self.debounce_s:
            self.stable, self.since, self._pending = raw, self._pending_since, None
            return True
        return False

    def due(self) -> float | None:
        """Seconds from the pending edge's start until it settles (None: nothing pending)."""
        return None if self._pending is None else self._pending_since + self.debounce_s

    def accept(self, now: float) -> None:
        """Take the pin's present state as stable (after the driver itself moved it)."""
        self.stable, self.since, self._pending = self.raw, now, None

    def word(self, words: tuple[str, str] | None) -> str | None:
        if self.stable is None:
            return None
        return (words or ("active", "inactive"))[0 if self.stable else 1]

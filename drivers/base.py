"""The small base every driver shares: a name, an emit function, a clock, start/stop, health.

Outside dependencies (emit, clock, randomness, later the pin factory) are injected, so
tests drive the real driver code without patching anything.
"""

import logging
import threading

from agent.events import Emit, Event


class Driver:
    """A device driver with its own thread; subclasses implement `run` and use `self.emit`."""

    name = "driver"

    def __init__(self, emit: Emit) -> None:
        self._emit = emit
        self.log = logging.getLogger(f"drivers.{self.name}")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name=f"driver-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def health(self) -> dict:
        alive = bool(self._thread and self._thread.is_alive())
        return {"running": alive, "error": self.error}

    def emit(self, event: Event) -> bool:
        """Hand an event to the agent; a failure is logged and reported, never fatal to the driver."""
        try:
            return bool(self._emit(event))
        except Exception as exc:  # storage trouble must not silence the sensor for good
            self.error = f"emit failed: {type(exc).__name__}: {exc}"
            self.log.exception("driver %s could not emit %s/%s", self.name, event.cls, event.kind)
            return False

    def wait(self, seconds: float) -> bool:
        """Sleep, waking early on stop; True when the driver should stop."""
        return self._stop.wait(seconds)

    def _main(self) -> None:
        try:
            self.run()
        except Exception as exc:  # a driver must never take the daemon down; the center must hear of it
            self.error = f"{type(exc).__name__}: {exc}"
            self.log.exception("driver %s crashed", self.name)
            self.emit(Event("event", "fault", {"component": f"driver:{self.name}", "detail": self.error[:200]}))

    def run(self) -> None:
        raise NotImplementedError

"""The small base every driver shares: lifecycle, restart with backoff, emit, clock, pins, schedules.

A driver is a state machine: `setup()` creates its gpiozero devices, `step(now)` reads its
debounced inputs, acts on timers and returns when it next needs to look. Pin edges
only wake the driver's thread; all logic runs there (or in a test's thread) under one lock,
so there is no callback logic racing the timers. Everything outside - emit, clock, pin
factory, time zone, persistent state - is injected, so tests drive the real code with
gpiozero's MockFactory and a clock they move. A crash closes the devices, is reported as a
`fault` event and the driver is set up again after a doubling backoff; the daemon never stops.
A fault that is the machine's, not the code's (no GPIO pin factory: a PC, a Pi 5 without lgpio,
a user outside the gpio group) is a TryggError whose message says what is wrong and the fix: it
is logged as one line per attempt, without a traceback, and sent as a `fault` event once, not
again while it stays the same (staff see it once; the log shows the backoff).
An emit that fails (a full or failing card) slows the driver's timers down (0.25 s doubling to
2 s, so an alarm timer is late by seconds at most), never into a loop; pin edges still wake it.
Never imports MQTT, crypto or SQLite.
"""

import logging
import threading
from datetime import datetime, timezone, tzinfo
from typing import Callable

from gpiozero import DigitalInputDevice, OutputDevice
from gpiozero.exc import BadPinFactory

from protocol.errors import TryggError
from protocol.events import Emit, Event

from .contact import Contact

IDLE_S = 10.0  # look at least this often (schedule edges, day changes) even with nothing due
STABLE_S = 60.0  # running this long after a crash counts as recovered
EMIT_BACKOFF_S = (0.25, 2.0)  # after a failed emit, timers wait at least this long, doubling to the cap
PIN_FACTORY_FIX = "install python3-lgpio (Raspberry Pi 5) or run on a Pi, with the service user in group gpio"


class NoPinFactory(TryggError, RuntimeError):
    """gpiozero found no way to reach the pins on this machine: a setup matter, not a crash."""


class Driver:
    kind = "driver"
    INPUTS: dict[str, tuple[str, str]] = {}  # input name -> (word when active, word when inactive)
    RESTING: dict[str, bool] = {}  # for a simulated world: inputs active at rest (a closed door)
    LINKED: tuple[str, str] | None = None  # for a simulated world: (output, the input that follows it)

    def __init__(self, name: str, emit: Emit, clock, *, pin_factory=None, zone: tzinfo = timezone.utc,
                 restart: tuple[float, float] = (1.0, 300.0), after_open: Callable[["Driver"], None] | None = None) -> None:
        self.name = name
        self.clock = clock
        self.zone = zone
        self.pin_factory = pin_factory
        self.log = logging.getLogger(f"drivers.{self.kind}.{name}")
        self.guard = threading.RLock()  # step() and actions (unlock) never interleave
        self.error: str | None = None
        self.crashes = 0
        self.inputs: dict[str, Contact] = {}
        self.outputs: dict[str, OutputDevice] = {}
        self._emit = emit
        self._restart = restart
        self._after_open = after_open
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.is_open = False
        self._faulted = False  # crashed, and not yet running a minute since
        self.emit_failures = 0  # in a row; reset by the next emit that works
        self._emit_quiet_until = float("-inf")  # monotonic: no timer-driven poll before this
        self._open_error: Exception | None = None  # why the last open() failed (None: it worked)
        self._reported: str | None = None  # the open fault staff were last told of

    @property
    def component(self) -> str:
        return f"{self.kind}:{self.name}"

    # -- what subclasses implement -----------------------------------------------------------
    def setup(self) -> None:
        """Create the devices (inputs before outputs) and the driver's initial state."""

    def step(self, now: float) -> float | None:
        """Act on inputs and timers at monotonic `now`; return the monotonic time something is
        next due (None: nothing)."""
        raise NotImplementedError

    # -- devices -------------------------------------------------------------------------------
    def input(self, name: str, wiring, debounce_s: float) -> Contact:
        pull_up = None if wiring.pull == "none" else wiring.pull == "up"
        device = self._pin(wiring.pin, "read", lambda: DigitalInputDevice(
            wiring.pin, pull_up=pull_up, active_state=wiring.active_high if pull_up is None else None,
            pin_factory=self.pin_factory))
        device.when_activated = device.when_deactivated = self.wake
        self.inputs[name] = contact = Contact(device, wiring, debounce_s)
        return contact

    def output(self, name: str, wiring) -> OutputDevice:
        device = self._pin(wiring.pin, "drive", lambda: OutputDevice(
            wiring.pin, active_high=wiring.active == "high", initial_value=False, pin_factory=self.pin_factory))
        self.outputs[name] = device
        return device

    def _pin(self, pin, verb: str, make):
        """A gpiozero device, or NoPinFactory naming the fix, this driver and its pin."""
        try:
            return make()
        except BadPinFactory as exc:
            raise NoPinFactory(f"no GPIO pin factory: {PIN_FACTORY_FIX}; the {self.kind} driver {self.name} "
                               f"cannot {verb} pin {pin} (gpiozero: {exc})") from None

    # -- lifecycle -----------------------------------------------------------------------------
    def open(self) -> None:
        with self.guard:
            self.inputs, self.outputs = {}, {}
            try:
                self.setup()
            except BaseException as exc:
                self._open_error = exc if isinstance(exc, Exception) else None
                self.close()
                raise
            self._open_error = None
            self.is_open = True
        if self._after_open:
            self._after_open(self)

    def poll(self) -> float | None:
        with self.guard:
            return self.step(self.clock.monotonic())

    def close(self) -> None:
        with self.guard:
            self.is_open = False
            for device in [*self.outputs.values(), *(c.device for c in self.inputs.values())]:
                try:
                    device.close()
                except Exception:  # closing one pin must not leave the others claimed
                    self.log.exception("closing a device of %s failed", self.component)

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name=f"driver-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)

    def alive(self) -> bool:
        return bool(self._thread and self._thread.is_alive())

    def health(self) -> dict:
        return {"kind": self.kind, "running": self.alive() and self.is_open and not self._faulted, "error": self.error,
                "crashes": self.crashes, "inputs": {n: c.word(self.INPUTS.get(n)) for n, c in self.inputs.items()}}

    def _main(self) -> None:
        backoff = self._restart[0]
        failed_open = self._open_error  # the daemon's open() failed just now: report it, retry after the backoff
        while not self._stop.is_set():
            opened_at = self.clock.monotonic()
            try:
                if failed_open is not None:
                    exc, failed_open = failed_open, None
                    raise exc
                if not self.is_open:  # the first time, the daemon may have opened it already
                    self.open()
                self._run(opened_at)
            except Exception as exc:  # a driver must never take the daemon down; the center must hear of it
                self._crashed(exc, backoff)
            finally:
                self.close()
            if self.clock.monotonic() - opened_at >= STABLE_S:
                backoff = self._restart[0]
            if self.clock.wait(self._stop, backoff):
                return
            backoff = min(backoff * 2, self._restart[1])

    def _run(self, opened_at: float) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # before reading the pins: an edge from now on wakes the next wait
            due = self.poll()
            if self._faulted and self.clock.monotonic() - opened_at >= STABLE_S:
                self.emit("event", "fault_cleared", {"component": self.component,
                                                     "detail": f"running again after {self.crashes} crash(es)"})
                self.error, self._faulted, self._reported = None, False, None
            now = self.clock.monotonic()
            wait = IDLE_S if due is None else min(max(due - now, 0.0), IDLE_S)
            self.clock.wait(self._wake, max(wait, self._emit_quiet_until - now))

    def _crashed(self, exc: Exception, backoff: float) -> None:
        """Count, log and report a crash. A TryggError says what is wrong and the fix itself: one
        line, no traceback, and staff are told once while it stays the same."""
        self.crashes += 1
        self._faulted = True
        if isinstance(exc, TryggError):
            self.error = str(exc)[:300]
            self.log.error("driver %s: %s; trying again in %.3g s", self.component, self.error, backoff)
            if self.error == self._reported:
                return
        else:
            self.error = f"{type(exc).__name__}: {exc}"[:200]
            self.log.exception("driver %s crashed; restarting in %.0f s", self.component, backoff)
        self._reported = self.error
        self.emit("event", "fault", {"component": self.component, "detail": self.error,
                                     "restart_in_s": round(backoff, 1)})

    # -- helpers for subclasses ----------------------------------------------------------------
    def emit(self, cls: str, kind: str, body: dict | None = None) -> bool:
        """Hand an event to the agent; a failure is logged and reported, never fatal to the driver."""
        event = Event(cls, kind, {self.kind: self.name, **(body or {})})
        try:
            ok = bool(self._emit(event))
        except Exception as exc:  # storage trouble must not silence the sensor for good
            self.error = f"emit failed: {type(exc).__name__}: {exc}"[:200]
            self.log.exception("driver %s could not emit %s/%s", self.component, cls, kind)
            ok = False
        self._note_emit(ok)
        return ok

    def _note_emit(self, ok: bool) -> None:
        """Back off after failed emits, so a driver whose events cannot be taken never spins."""
        if ok:
            self.emit_failures, self._emit_quiet_until = 0, float("-inf")
            return
        self.emit_failures += 1
        first, cap = EMIT_BACKOFF_S
        self._emit_quiet_until = self.clock.monotonic() + min(first * 2 ** (self.emit_failures - 1), cap)

    def local_now(self) -> datetime:
        return self.clock.now().astimezone(self.zone)

    def in_schedule(self, windows) -> bool:
        """Inside any of these local windows. Without a synchronized clock the local time is a
        guess, so a safety schedule counts as active (better a false alarm than a missed fall)."""
        if not self.clock.synced():
            return True
        local = self.local_now()
        return any(w.contains(local) for w in windows)


def soonest(*deadlines: float | None) -> float | None:
    """The nearest of several due times (None: nothing due)."""
    due = [d for d in deadlines if d is not None]
    return min(due) if due else None

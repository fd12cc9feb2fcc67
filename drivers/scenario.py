"""Scenarios: plain-text nights a technician can write, played against the real drivers on mock pins.

    # comment
    start 22:00                      the simulated local time the scenario begins
    speed 900                        simulated seconds per real second (optional)
    22:10 bed pressure pressed       DEVICE INPUT STATE (the input's words, see docs/scenarios.md)
    03:00 jam front-door             the lock's bolt stops following its relay (`free` undoes it)
    03:00 say The resident gets up   a line for the log
    end 07:30                        keep playing until then (timers may still fire)

Times are local HH:MM or HH:MM:SS and never go back: an earlier time than the line before is on
the next day. The simulated clock runs `speed` times faster than real time from `start`; the
drivers see only that clock, so debounce, hold times and schedules behave as they would.
"""

import logging
import threading
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from protocol.errors import TryggError

log = logging.getLogger("trygg.scenario")
DEFAULT = Path(__file__).with_name("scenarios") / "night.txt"


class ScenarioError(TryggError, ValueError):
    pass


@dataclass(frozen=True)
class Step:
    at_s: float  # seconds after the start
    line: int
    words: tuple[str, ...]


@dataclass(frozen=True)
class Scenario:
    start: str
    speed: float | None
    steps: tuple[Step, ...]
    end_s: float
    source: str


def _clock_time(text: str, where: str) -> float:
    parts = text.split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        h, m, s = (int(p) for p in parts + ["0"] * (3 - len(parts)))
        if not (0 <= h < 24 and 0 <= m < 60 and 0 <= s < 60):
            raise ValueError
    except ValueError:
        raise ScenarioError(f"{where}: expected a time as HH:MM or HH:MM:SS, got {text!r}") from None
    return h * 3600 + m * 60 + s


def parse(text: str, source: str = "scenario") -> Scenario:
    start = speed = None
    steps: list[Step] = []
    last = end = 0.0
    for number, raw in enumerate(text.splitlines(), 1):
        words = tuple(raw.split("#", 1)[0].split())
        where = f"{source}:{number}"
        if not words:
            continue
        if words[0] == "start" and len(words) == 2:
            start = _clock_time(words[1], where)
            continue
        if words[0] == "speed" and len(words) == 2:
            try:
                speed = float(words[1])
                if not 0 < speed <= 100_000:
                    raise ValueError
            except ValueError:
                raise ScenarioError(f"{where}: speed must be a number from 0 to 100000, got {words[1]!r}") from None
            continue
        if start is None:
            raise ScenarioError(f"{where}: the scenario must begin with `start HH:MM`")
        is_end = words[0] == "end" and len(words) == 2
        at = _clock_time(words[1] if is_end else words[0], where) - start
        while at < last:
            at += 86400
        last = at
        if is_end:
            end = at
            continue
        if len(words) < 2:
            raise ScenarioError(f"{where}: expected `TIME DEVICE INPUT STATE`, `TIME jam|free LOCK` or `TIME say TEXT`")
        steps.append(Step(at, number, words[1:]))
    if start is None:
        raise ScenarioError(f"{source}: empty scenario (it must begin with `start HH:MM`)")
    return Scenario(_hhmm(start), speed, tuple(steps), max(end, last), source)


def _hhmm(seconds: float) -> str:
    return f"{int(seconds) // 3600:02d}:{int(seconds) % 3600 // 60:02d}"


def load(path: Path | None) -> Scenario:
    path = Path(path) if path else DEFAULT
    try:
        return parse(path.read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read the scenario ({exc})") from None


class ScaledClock:
    """A clock that runs `speed` times faster than real time from a chosen local start. Only the
    drivers see it; event times and the rest of the daemon stay on the real clock."""

    def __init__(self, start_local: datetime, speed: float) -> None:
        self.speed = speed
        self._real0 = time.monotonic()
        self._wall0 = start_local.astimezone(timezone.utc)
        self._mono0 = 1_000_000.0
        self._jumped = 0.0

    def elapsed(self) -> float:
        return (time.monotonic() - self._real0) * self.speed + self._jumped

    def now(self) -> datetime:
        return self._wall0 + timedelta(seconds=self.elapsed())

    def time(self) -> float:
        return self.now().timestamp()

    def monotonic(self) -> float:
        return self._mono0 + self.elapsed()

    def synced(self) -> bool:
        return True

    def wait(self, event: threading.Event, seconds: float) -> bool:
        return event.wait(max(seconds, 0.0) / self.speed)

    def sleep(self, seconds: float) -> None:
        time.sleep(max(seconds, 0.0) / self.speed)

    def real_time(self) -> None:
        """From now on run at real speed (a scenario played once has ended; the home lives on)."""
        self._jumped, self._real0, self.speed = self.elapsed(), time.monotonic(), 1.0

    def jump(self, seconds: float) -> None:
        """Let time pass at once (between repeats of a scenario: the day passes in a blink)."""
        self._jumped += seconds


def start_at(scenario: Scenario, zone: tzinfo, today: date | None = None) -> datetime:
    today = today or datetime.now(zone).date()
    hour, minute = map(int, scenario.start.split(":"))
    return datetime(today.year, today.month, today.day, hour, minute, tzinfo=zone)


def check(scenario: Scenario, inputs: dict[str, dict[str, tuple[str, str]]], locks: set[str]) -> None:
    """Every step names a device, input and state this home has (before anything is played)."""
    for step in scenario.steps:
        where, words = f"{scenario.source}:{step.line}", step.words
        if words[0] == "say":
            continue
        if words[0] in ("jam", "free"):
            if len(words) != 2 or words[1] not in locks:
                raise ScenarioError(f"{where}: `{words[0]} LOCK` needs one of: {', '.join(sorted(locks)) or 'no locks'}")
            continue
        if len(words) != 3:
            raise ScenarioError(f"{where}: expected `TIME DEVICE INPUT STATE`, got {' '.join(words)!r}")
        device, name, state = words
        if device not in inputs:
            raise ScenarioError(f"{where}: no device {device!r} (this home has: {', '.join(sorted(inputs))})")
        if name not in inputs[device]:
            raise ScenarioError(f"{where}: {device} has no input {name!r} (it has: {', '.join(inputs[device])})")
        if state not in inputs[device][name]:
            raise ScenarioError(f"{where}: {device}.{name} is {' or '.join(inputs[device][name])}, not {state!r}")


class Player:
    """Plays a scenario on its own thread against a SimWorld, on the scenario's clock."""

    def __init__(self, scenario: Scenario, world, clock: ScaledClock, zone: tzinfo, repeat: bool, wake_all) -> None:
        self.scenario, self.world, self.clock, self.zone, self.repeat = scenario, world, clock, zone, repeat
        self.wake_all = wake_all
        self.rounds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="scenario", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _main(self) -> None:
        try:
            while not self._stop.is_set():
                begin = self.clock.elapsed()
                log.info("scenario %s: playing from %s at %gx", self.scenario.source, self.scenario.start, self.clock.speed)
                for step in self.scenario.steps:
                    if self._until(begin + step.at_s):
                        return
                    self._apply(step)
                if self._until(begin + self.scenario.end_s):
                    return
                self.rounds += 1
                log.info("scenario %s: done (round %d)", self.scenario.source, self.rounds)
                if not self.repeat:
                    self.clock.real_time()
                    self.wake_all()
                    return
                self.clock.jump(86400 - (self.clock.elapsed() - begin) % 86400)  # to the next day's start
                self.wake_all()
        except Exception:  # a scenario bug must not take the simulated home down
            log.exception("scenario stopped")

    def _until(self, at_s: float) -> bool:
        return self.clock.wait(self._stop, at_s - self.clock.elapsed())

    def _apply(self, step: Step) -> None:
        words = step.words
        local = self.clock.now().astimezone(self.zone).strftime("%H:%M:%S")
        if words[0] == "say":
            log.info("scenario %s: %s", local, " ".join(words[1:]))
        elif words[0] in ("jam", "free"):
            self.world.jam(words[1], words[0] == "jam")
            log.info("scenario %s: %s %s", local, words[0], words[1])
        else:
            self.world.set(*words)
            log.info("scenario %s: %s", local, " ".join(words))

"""The fleet report: how this device is doing, sealed into every online status for the center.

One function per source (the SoC's temperature, the firmware's throttled bits, the outbox, the
drivers, the TLS client certificate), each returning None when it cannot tell - never a guess.
Collecting must never stop a heartbeat: a source that fails costs its own field (None, one log
line until it works again), a value outside the report's bounds is dropped the same way, and
a report that cannot be sealed costs the report, never the status (`FleetReporter.sealed`).

It runs on the uplink thread, so nothing here may block: the one slow source, `vcgencmd` (a
subprocess, only where the kernel has no get_throttled file), is run by housekeeping
(`refresh_throttled`) and its answer kept. The certificate is read at start and on `reload()`.
Never publishes, never stores: the uplink sends what `sealed()` returns.
"""

import logging
import re
import subprocess
import threading
from collections.abc import Callable
from datetime import datetime
from importlib import metadata
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ed25519
from pydantic import ValidationError

from protocol import topics
from protocol.events import CLASSES, Event
from protocol.fleet import seal_report
from protocol.kem import KemPublic
from protocol.messages import COMPONENT_PATTERN, MAX_COMPONENTS, FleetReport

log = logging.getLogger(__name__)

THERMAL = Path("/sys/class/thermal/thermal_zone0/temp")
THROTTLED = Path("/sys/devices/platform/soc/soc:firmware/get_throttled")
VCGENCMD = ("vcgencmd", "get_throttled")
VCGENCMD_TIMEOUT_S = 2.0
UNDER_VOLTAGE_NOW, UNDER_VOLTAGE_SEEN = 1 << 0, 1 << 16  # the firmware's get_throttled bits
_COMPONENT_RE = re.compile(COMPONENT_PATTERN)
_VCGENCMD_RE = re.compile(r"^throttled=(0x[0-9a-fA-F]{1,8})$")


# -- one function per source ------------------------------------------------------------------
def cpu_temp_c(path: Path = THERMAL) -> float | None:
    """The SoC's temperature in °C from sysfs (millidegrees there); None where there is none."""
    try:
        return round(int(path.read_text().strip()) / 1000, 1)
    except (OSError, ValueError):
        return None


def throttled_from_sysfs(path: Path = THROTTLED) -> int | None:
    """The firmware's throttled bits (hex) as the Pi's kernel offers them; None where it does not."""
    try:
        return int(path.read_text().strip(), 16)
    except (OSError, ValueError):
        return None


def throttled_from_vcgencmd(command: tuple[str, ...] = VCGENCMD, timeout: float = VCGENCMD_TIMEOUT_S) -> int | None:
    """The same bits from `vcgencmd get_throttled` (`throttled=0x50005`); None when it is not
    installed, fails, hangs or answers anything else. Blocks up to `timeout`: housekeeping only."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VCGENCMD_RE.fullmatch(done.stdout.strip()) if done.returncode == 0 else None
    return int(match.group(1), 16) if match else None


def under_voltage(bits: int | None) -> tuple[bool | None, bool | None]:
    """(under-voltage now, under-voltage at some time since boot) from the throttled bits."""
    if bits is None:
        return None, None
    return bool(bits & UNDER_VOLTAGE_NOW), bool(bits & UNDER_VOLTAGE_SEEN)


def cert_expiry(path: Path) -> datetime:
    """The TLS client certificate's not-valid-after (UTC). Raises OSError or ValueError."""
    return x509.load_pem_x509_certificate(Path(path).read_bytes()).not_valid_after_utc


def software_version() -> str | None:
    """The installed package's version; the source tree's when it runs uninstalled."""
    try:
        return metadata.version("trygg")
    except metadata.PackageNotFoundError:
        from . import __version__
        return __version__


def outbox_depths(stats: dict) -> dict:
    """Rows waiting and the oldest one's age (whole seconds) per class, from Outbox.stats()."""
    classes = stats["classes"]
    return {cls: {"depth": classes[cls]["depth"],
                  "oldest_age_s": None if classes[cls]["oldest_age_s"] is None else int(classes[cls]["oldest_age_s"])}
            for cls in CLASSES}


def drivers_down(health: dict) -> list[str]:
    """Drivers not running (crashed, or not yet open), as components (`mat:bedroom`), from
    HomeDevices.health()."""
    return _bounded(f"{h['kind']}:{name}" for name, h in health.items() if not h["running"])


def _bounded(components) -> list[str]:
    """Sorted, well-formed and at most MAX_COMPONENTS (a report must stay small)."""
    names = sorted({c for c in components if isinstance(c, str) and _COMPONENT_RE.fullmatch(c)})
    if len(names) > MAX_COMPONENTS:
        log.warning("fleet report: %d components, only the first %d reported", len(names), MAX_COMPONENTS)
    return names[:MAX_COMPONENTS]


class OpenFaults:
    """Components with a fault not yet cleared, as the events through the daemon say: a `fault`
    (or a lock's `lock_fault`) opens one, `fault_cleared` closes it. Since the daemon started:
    a driver that is still faulty says so again when it opens."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[str] = set()

    def note(self, event: Event) -> None:
        """Called with every event on the emit path; never raises (it must not cost an alarm)."""
        try:
            if event.kind == "lock_fault":
                component = f"lock:{event.body.get('lock')}"
            elif event.kind in ("fault", "fault_cleared"):
                component = event.body.get("component")
            else:
                return
            if not isinstance(component, str) or not _COMPONENT_RE.fullmatch(component):
                return
            with self._lock:
                if event.kind == "fault_cleared":
                    self._open.discard(component)
                elif len(self._open) < 4 * MAX_COMPONENTS:  # a flood of odd names must not grow it for ever
                    self._open.add(component)
        except Exception:  # logged; the event goes on
            log.exception("fleet report: could not note %s", getattr(event, "kind", event))

    def names(self) -> list[str]:
        with self._lock:
            return _bounded(self._open)


# -- the report ---------------------------------------------------------------------------------
REPORT_EVERY_S = 900.0  # a report at least this often, even when nothing changed


class FleetReporter:
    """Collects and seals this home's fleet report; everything it reads is injected."""

    def __init__(self, home: str, sign: ed25519.Ed25519PrivateKey, center: Callable[[], KemPublic], clock, *,
                 outbox, drivers: Callable[[], dict], held_alarms: Callable[[], int], faults: OpenFaults, cert: Path,
                 thermal: Path = THERMAL, throttled: Path = THROTTLED, vcgencmd: tuple[str, ...] = VCGENCMD) -> None:
        self.home, self.sign, self.center, self.clock = home, sign, center, clock
        self.outbox, self.drivers, self.held_alarms, self.faults = outbox, drivers, held_alarms, faults
        self.cert, self.thermal, self.throttled, self.vcgencmd = Path(cert), thermal, throttled, vcgencmd
        self._vcgencmd_bits: int | None = None
        self._failing: set[str] = set()  # fields whose failure was logged; quiet until they work again
        self._refused: set[str] = set()  # fields once refused by the model's bounds (logged once)
        self._last_key: tuple | None = None  # what the last report sent said, in what matters
        self._last_sent = -1e18
        self.version: str | None = None
        self.cert_expires: datetime | None = None
        self.reload()

    def reload(self) -> None:
        """Read what changes only with a new install or certificate: the version, the cert's expiry."""
        self.version = self._field("version", software_version)
        self.cert_expires = self._field("cert_expires", lambda: cert_expiry(self.cert))

    def refresh_throttled(self) -> None:
        """Housekeeping: ask vcgencmd, where the kernel has no get_throttled file (blocks up to 2 s)."""
        if not self.throttled.exists():
            self._vcgencmd_bits = throttled_from_vcgencmd(self.vcgencmd)

    def collect(self) -> FleetReport:
        """The report as of now; a field whose source fails is None. Raises only for a bug in
        the home id or clock, which the caller (sealed) turns into no report."""
        stats = self._field("outbox", self.outbox.stats)
        bits = throttled_from_sysfs(self.throttled) if self.throttled.exists() else self._vcgencmd_bits
        now_uv, seen_uv = under_voltage(bits)
        disk = self._field("disk_free_bytes", self.outbox.disk)
        held = self._field("held alarms", self.held_alarms)
        fields = {
            "version": self.version,
            "outbox": None if stats is None else self._field("outbox depths", lambda: outbox_depths(stats)),
            "unacked_alarms": None if stats is None or held is None else stats["classes"]["alarm"]["depth"] + held,
            "drivers_down": self._field("drivers_down", lambda: drivers_down(self.drivers())),
            "faults": self._field("faults", self.faults.names),
            "cpu_temp_c": cpu_temp_c(self.thermal),
            "disk_free_bytes": None if disk is None else disk["free_bytes"],
            "under_voltage": now_uv,
            "under_voltage_seen": seen_uv,
            "clock_synced": self._field("clock_synced", lambda: bool(self.clock.synced())),
            "cert_expires": self.cert_expires,
        }
        return self._validated(fields)

    def sealed(self) -> str | None:
        """The sealed report for the status's `report` field, when it is due: at the first
        heartbeat, when something a technician acts on changed (faults, drivers down, alarms
        unacknowledged, power, version), and at least every REPORT_EVERY_S. Otherwise None, so a
        quiet home's heartbeat stays small (a report is about 1.4 KB on the link). None (logged)
        also when it cannot be made."""
        try:
            report = self.collect()
            key = (report.faults, report.drivers_down, bool(report.unacked_alarms), report.under_voltage,
                   report.version)
            now = self.clock.monotonic()
            if key == self._last_key and now - self._last_sent < REPORT_EVERY_S:
                return None
            text = seal_report(report, topics.status(self.home), self.sign, self.center())
            self._last_key, self._last_sent = key, now
        except Exception:  # the heartbeat goes out without a report
            if "report" not in self._failing:  # once, with the traceback, until it works again
                self._failing.add("report")
                log.exception("fleet report: could not make the report; the heartbeat goes without it")
            return None
        self._failing.discard("report")
        return text

    def _field(self, name: str, read: Callable):
        """read(), or None when it fails: logged once until it works again."""
        try:
            value = read()
        except Exception as exc:  # noqa: BLE001 - one field lost, not the heartbeat
            if name not in self._failing:
                self._failing.add(name)
                log.warning("fleet report: %s unknown: %s: %s", name, type(exc).__name__, exc)
            return None
        if name in self._failing:
            self._failing.discard(name)
            log.info("fleet report: %s known again", name)
        return value

    def _validated(self, fields: dict) -> FleetReport:
        """The model, with each field it refuses (out of its bounds) set to None and logged."""
        base = {"home": self.home, "time": self.clock.now()}
        for _ in range(len(fields) + 1):
            try:
                return FleetReport(**base, **fields)
            except ValidationError as exc:
                bad = {e["loc"][0] for e in exc.errors() if e["loc"] and e["loc"][0] in fields}
                if not bad:
                    raise
                for name in bad:
                    level = logging.DEBUG if name in self._refused else logging.WARNING
                    log.log(level, "fleet report: %s out of bounds (%r): reported as unknown", name, fields[name])
                    self._refused.add(name)
                    fields[name] = None
        raise AssertionError("unreachable: every field None validates")

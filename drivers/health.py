"""Health of the device itself, as periodic `device_health` telemetry: CPU temperature, free
disk where the outbox lives, under-voltage where the platform reports it (the Raspberry Pi's
rpi_volt hwmon), and whether the clock is synchronized. Reads sysfs only; a value the platform
does not offer is null, never a guess.
"""

import shutil
from pathlib import Path

from .base import Driver
from protocol.times import Seconds, Strict


def cpu_temp_c(sysfs: Path) -> float | None:
    try:
        return round(int((sysfs / "class/thermal/thermal_zone0/temp").read_text().strip()) / 1000, 1)
    except (OSError, ValueError):
        return None


def under_voltage(sysfs: Path) -> bool | None:
    """True while the supply is below what the Pi needs (None where the platform does not say)."""
    for hwmon in sorted((sysfs / "class/hwmon").glob("hwmon*")):
        try:
            if (hwmon / "name").read_text().strip() == "rpi_volt":
                return (hwmon / "in0_lcrit_alarm").read_text().strip() == "1"
        except OSError:
            continue
    return None


class HealthConfig(Strict):
    """Telemetry on the device itself: CPU temperature, free disk, under-voltage, clock state."""

    every_s: Seconds = 900.0
    sysfs: str = "/sys"  # where the platform reports temperature and voltage (a test points elsewhere)



class DeviceHealth(Driver):
    kind = "health"

    def __init__(self, name, config, emit, clock, data_dir: Path, **kw) -> None:
        super().__init__(name, emit, clock, **kw)
        self.cfg = config
        self.data_dir = Path(data_dir)
        self.next_at: float | None = None

    def reading(self) -> dict:
        sysfs = Path(self.cfg.sysfs)
        disk = shutil.disk_usage(self.data_dir)
        return {"cpu_temp_c": cpu_temp_c(sysfs), "disk_free_mb": disk.free // 2**20,
                "disk_free_pct": round(100 * disk.free / disk.total, 1), "under_voltage": under_voltage(sysfs),
                "clock_synced": bool(self.clock.synced())}

    def step(self, now: float) -> float | None:
        if self.next_at is None or now >= self.next_at:
            self.emit("telemetry", "device_health", self.reading())
            self.next_at = now + self.cfg.every_s
        return self.next_at

"""The receiving side's configuration (TOML on disk): its name and keys, the broker, rounds.

Validated like the device's (base/configbase.py): every bad value one line naming the key,
unknown keys are errors, relative paths resolved against the config file's directory.
"""

import os
from pathlib import Path
from typing import ClassVar

from pydantic import Field

from base import configbase
from base.configbase import BrokerConfig, LogConfig, _Section
from base.configpath import CENTER_CONFIG as DEFAULT_CENTER_CONFIG



class CenterSection(_Section):
    name: str = Field(default="center", pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    key: Path = Path("center.key")
    next_key: Path = Path("center.next.key")  # during a key rotation (used only when present)
    retired_keys: Path = Path("retired-keys")  # old keys, still opening events sealed before a rotation
    staff_dir: Path = Path("staff")  # staff members' key pairs (trygg center staff-key)
    homes_dir: Path = Path("homes")
    store: Path = Path("center.db")
    silent_after_heartbeats: float = Field(default=3.0, ge=1.5, le=100)
    shared_group: str = Field(default="", pattern=r"^[A-Za-z0-9_-]{0,64}$")  # several receivers share events
    session_expiry_s: int = Field(default=86400, ge=0, le=30 * 86400)  # broker keeps our queue while we restart


class RoundsConfig(_Section):
    """Look-in rounds at the center (docs/operations.md): when staff look again after a
    resident was not seen, and how often the receiver checks what fell due."""

    retry_after_s: float = Field(default=600.0, ge=10, le=3600)
    evaluate_every_s: float = Field(default=5.0, ge=0.1, le=300)


class CenterConfig(_Section):
    PATH_KEYS: ClassVar[dict[str, tuple[str, ...]]] = {
        "broker": ("ca", "cert", "key"),
        "center": ("key", "next_key", "retired_keys", "staff_dir", "homes_dir", "store"),
    }
    center: CenterSection = CenterSection()
    broker: BrokerConfig
    rounds: RoundsConfig = RoundsConfig()
    log: LogConfig = LogConfig()


def load(path: Path) -> CenterConfig:
    """Read and validate a center config file; raise ConfigError with every problem listed."""
    return configbase.load(path, CenterConfig)


def config_path(given: str | os.PathLike | None, default: Path = DEFAULT_CENTER_CONFIG) -> Path:
    return configbase.config_path(given, default)

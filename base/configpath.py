"""Which config file a command reads: --config, then $TRYGG_CONFIG, then the side's default.

Kept apart from configbase.py so that finding the file costs no pydantic import (CLI start-up).
"""

import os
from pathlib import Path

CONFIG_ENV = "TRYGG_CONFIG"
DEVICE_CONFIG = Path("/etc/trygg/trygg.toml")
CENTER_CONFIG = Path("/etc/trygg-center/center.toml")  # its own folder: the trygg-center user reads it
EARLIER_CENTER_CONFIG = Path("/etc/trygg/center.toml")  # the default before the Debian packages


def config_path(given: str | os.PathLike | None, default: Path) -> Path:
    """--config wins, then $TRYGG_CONFIG, then the side's default (a center set up at the earlier
    default keeps working there until it is moved)."""
    if given or os.environ.get(CONFIG_ENV):
        return Path(given or os.environ[CONFIG_ENV])
    if default == CENTER_CONFIG and not default.exists() and EARLIER_CENTER_CONFIG.exists():
        return EARLIER_CENTER_CONFIG
    return default

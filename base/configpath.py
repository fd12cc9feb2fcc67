"""Which config file a command reads: --config, then $TRYGG_CONFIG, then the side's default.

Kept apart from configbase.py so that finding the file costs no pydantic import (CLI start-up).
"""

import os
from pathlib import Path

CONFIG_ENV = "TRYGG_CONFIG"
DEVICE_CONFIG = Path("/etc/trygg/trygg.toml")
CENTER_CONFIG = Path("/etc/trygg/center.toml")


def config_path(given: str | os.PathLike | None, default: Path) -> Path:
    """--config wins, then $TRYGG_CONFIG, then the default under /etc/trygg."""
    return Path(given or os.environ.get(CONFIG_ENV) or default)

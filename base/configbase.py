"""The config machinery both sides use: strict sections, durations, the broker section, loading
and checking a TOML file (every bad value one line). Local times and windows are the protocol's
(protocol/times.py), so drivers, policy and the center agree on what "22:00-07:00" means.
"""

import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field, ValidationError

from protocol.times import DAYS, HHMM, Seconds, Strict, TimeWindow, TimeZone, check_hhmm, check_timezone  # noqa: F401

from .configpath import CONFIG_ENV, config_path  # noqa: F401 - one place for both sides
from .errors import ConfigError



_Section = Strict  # every config section: unknown keys are errors


class BrokerConfig(_Section):
    """The municipal MQTT broker and this side's mutual-TLS credentials."""

    host: str = Field(min_length=1, max_length=253)
    port: int = Field(default=8883, ge=1, le=65535)
    ca: Path
    cert: Path
    key: Path
    keepalive_s: int = Field(default=30, ge=5, le=3600)


class LogConfig(_Section):
    level: Literal["debug", "info", "warning", "error"] = "info"


def _resolve_paths(config: BaseModel, base: Path, source: str) -> BaseModel:
    """Make relative paths (given or default) relative to the config file, not to wherever
    the process was started (`/` under systemd). Each side's config names its PATH_KEYS."""
    updates = {}
    for section, keys in getattr(config, "PATH_KEYS", {}).items():
        values = getattr(config, section, None)
        if values is None:
            continue
        changed = {}
        for key in keys:
            path = getattr(values, key)
            if path is None:
                continue
            if "\x00" in str(path):
                raise ConfigError(f"{source}:\n{section}.{key}: a path cannot contain a NUL character")
            if not path.is_absolute():
                changed[key] = (base / path).resolve()
        if changed:
            updates[section] = values.model_copy(update=changed)
    return config.model_copy(update=updates)


def _key(part) -> str:
    """A key as written, or quoted when it holds anything odd (a newline must not split the line)."""
    text = str(part)
    return text if re.fullmatch(r"[A-Za-z0-9_-]+", text) else repr(text)


def describe_errors(exc: ValidationError) -> str:
    """One line per bad value: `section.key: what was expected, got VALUE`."""
    lines = []
    for err in exc.errors():
        where = ".".join(_key(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            lines.append(f"{where}: unknown key")
        elif err["type"] == "missing":
            lines.append(f"{where}: required key is missing")
        elif not err["loc"]:  # a check across sections: the message names the keys itself
            lines.append(err["msg"].removeprefix("Value error, "))
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{where}: {msg[0].lower() + msg[1:]}, got {err.get('input')!r}")
    return "\n".join(lines)


# (the section only that side's config has, what to say when the other side is given it)
_SIDES = [("home", "center", ("this is a device config (trygg.toml); `trygg center` needs the center's config, "
                              "e.g. /etc/trygg-center/center.toml")),
          ("center", "home", ("this is a center config (center.toml); `trygg` needs the device's config, "
                              "e.g. /etc/trygg/trygg.toml"))]


def parse(data: dict, model: type[BaseModel], base: Path, source: str = "config"):
    for has, wanted, message in _SIDES:  # one line, not every key listed as unknown
        if has in data and wanted not in data and wanted in model.model_fields and has not in model.model_fields:
            raise ConfigError(f"{source}: {message}")
    try:
        config = model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}:\n{describe_errors(exc)}") from None
    return _resolve_paths(config, base, source)


def load(path: Path, model: type[BaseModel]):
    """Read and validate a config file; raise ConfigError with every problem listed."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found (use --config PATH or set {CONFIG_ENV})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return parse(data, model, path.parent.resolve(), str(path))


def for_display(config: BaseModel) -> dict:
    """The effective config as plain data. Safe to show: configs name key files by path and
    never hold key material themselves."""
    return config.model_dump(mode="json")

"""The building blocks shared by every config section: strict sections, durations, local time windows.

Pure data and checks: no I/O. A time window can answer "is this local time inside me?", so
drivers and policy ask the same object and agree on what "22:00-07:00" means.
"""

import re
import tomllib
import zoneinfo
from pathlib import Path
from datetime import datetime, time, timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from .configpath import CONFIG_ENV, config_path  # noqa: F401 - one place for both sides
from .errors import ConfigError

Seconds = Annotated[float, Field(gt=0, le=7 * 86400)]
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_hhmm(value: str) -> str:
    if not isinstance(value, str) or not _HHMM.fullmatch(value):
        raise ValueError("expected a time as HH:MM (00:00-23:59)")
    return value


HHMM = Annotated[str, AfterValidator(check_hhmm)]


def check_timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError("expected an IANA time zone such as Europe/Stockholm") from None
    return value


TimeZone = Annotated[str, Field(max_length=64), AfterValidator(check_timezone)]  # a local time of day, each item checked on its own


class TimeWindow(_Section):
    """Local start and end (HH:MM, may pass midnight), on the given weekdays; start == end is 24 hours from start."""

    start: str
    end: str
    days: list[Literal[DAYS]] = list(DAYS)  # type: ignore[valid-type]

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        return check_hhmm(value)

    def contains(self, local: datetime) -> bool:
        """Is this local time inside the window? A window passing midnight belongs to its start day."""
        start, end = time.fromisoformat(self.start), time.fromisoformat(self.end)
        now, today = local.time(), DAYS[local.weekday()]
        if start < end:
            return today in self.days and start <= now < end
        yesterday = DAYS[(local - timedelta(days=1)).weekday()]
        return (today in self.days and now >= start) or (yesterday in self.days and now < end)

    def all_day(self) -> bool:
        return self.start == self.end and set(self.days) == set(DAYS)




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


def parse(data: dict, model: type[BaseModel], base: Path, source: str = "config"):
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

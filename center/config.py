"""The receiving side's configuration (TOML on disk): its name and keys, the broker, rounds.

Validated like the device's (base/configbase.py): every bad value one line naming the key,
unknown keys are errors, relative paths resolved against the config file's directory.
"""

import os
from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator

from base import configbase
from base.configbase import BrokerConfig, LogConfig, _Section
from base.configpath import CENTER_CONFIG as DEFAULT_CENTER_CONFIG
from protocol.names import STAFF_NAME_RULE, is_staff_name

from .reports.promise import PromiseConfig  # [promise]: response times promised (its own module)



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
    rejected_summary_s: float = Field(default=60.0, ge=1, le=3600)  # rejected messages: one summary per home per period


class RoundsConfig(_Section):
    """Look-in rounds at the center (docs/operations.md): when staff look again after a
    resident was not seen, and how often the receiver checks what fell due."""

    retry_after_s: float = Field(default=600.0, ge=10, le=3600)
    evaluate_every_s: float = Field(default=5.0, ge=0.1, le=300)


class StoreConfig(_Section):
    """Where the center keeps what it receives: empty means the SQLite file [center] store (one
    receiver); postgresql://USER@HOST/DB for several receivers as one (password from ~/.pgpass
    or PGPASSFILE, never in this file)."""

    url: str = Field(default="", max_length=500)

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        from .db import parse_url

        if url:
            parse_url(url)  # ValueError names the forms accepted
            _scheme, has_scheme, rest = url.partition("://")
            userinfo, has_user, _host = rest.partition("@")
            if has_scheme and has_user and ":" in userinfo:
                raise ValueError("no password in the store url: put it in ~/.pgpass (or PGPASSFILE)")
        return url


DEFAULT_OUTCOMES = {
    "helped": "Hjälpt, ingen skada",
    "injured": "Hjälpt, skadad",
    "ambulance": "Ambulans tillkallad",
    "false_alarm": "Falsklarm",
    "not_home": "Brukaren var inte hemma",
    "technical": "Tekniskt fel",
}


class CasesConfig(_Section):
    """Alarm cases (center/cases.py): when an untaken alarm is escalated, when a case is overdue,
    and the outcomes a case may be closed with (id = label staff read)."""

    accept_within_s: float = Field(default=90.0, ge=5, le=3600)
    escalate_times: int = Field(default=3, ge=0, le=20)
    on_site_within_s: float = Field(default=1800.0, ge=60, le=86400)
    outcomes: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_OUTCOMES), min_length=1, max_length=30)
    on_call: list[str] = Field(default_factory=list, max_length=20)  # named on the TO ON-CALL line

    @field_validator("on_call")
    @classmethod
    def _on_call_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not is_staff_name(name):
                raise ValueError(f"on_call: {name!r} is not a staff name ({STAFF_NAME_RULE})")
        return names

    @field_validator("outcomes")
    @classmethod
    def _outcome_ids(cls, outcomes: dict[str, str]) -> dict[str, str]:
        import re

        for key, label in outcomes.items():
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,31}", key):
                raise ValueError(f"outcome id {key!r}: 1-32 characters a-z, 0-9 and '_', starting with a letter")
            if not isinstance(label, str) or not 0 < len(label) <= 100 or not label.isprintable():
                raise ValueError(f"outcome {key!r}: its label must be 1-100 printable characters")
        return outcomes


class WebConfig(_Section):
    """The night staff's web console (`trygg center web`): HTTPS with this certificate and key;
    plain HTTP only on a loopback address (the demo)."""

    listen: str = Field(default="127.0.0.1:8080", pattern=r"^[0-9A-Za-z.:\[\]-]+:[0-9]{1,5}$")
    cert: Path | None = None
    key: Path | None = None
    secret: Path = Path("web.secret")  # the session cookies' MAC key, made at first start (0600)
    session_h: float = Field(default=12.0, gt=0, le=24)  # a night shift; then sign in again
    # The console's host name as staff reach it (console.kommun.se): the passkeys' RP id, and the
    # only Host the console answers to. Unset (the demo): the host the browser used.
    host: str | None = Field(default=None, pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


class CenterConfig(_Section):
    PATH_KEYS: ClassVar[dict[str, tuple[str, ...]]] = {
        "broker": ("ca", "cert", "key"),
        "broker_fallback": ("ca", "cert", "key"),
        "center": ("key", "next_key", "retired_keys", "staff_dir", "homes_dir", "store"),
        "web": ("cert", "key", "secret"),
    }
    # What `trygg config validate` checks (base/filecheck.py kinds); [broker] and [broker_fallback]
    # get the broker's rules without being named. center.store with a PostgreSQL store is unused,
    # but its directory must still exist (the default, under the state directory init makes, does).
    FILES: ClassVar[dict[str, str]] = {
        "center.key": "private", "center.next_key": "optional-private", "center.homes_dir": "directory",
        "center.store": "created-private", "web.cert": "file", "web.key": "private", "web.secret": "created-private",
    }
    SERVICE_USER: ClassVar[str] = "trygg-center"  # systemd/trygg-center.service: a key at 0640 must have its group
    center: CenterSection = CenterSection()
    broker: BrokerConfig
    # The homes' second broker (their [broker_fallback]): received from too, as "<name>-fallback".
    broker_fallback: BrokerConfig | None = None
    rounds: RoundsConfig = RoundsConfig()
    store: StoreConfig = StoreConfig()
    cases: CasesConfig = CasesConfig()
    web: WebConfig = WebConfig()
    promise: PromiseConfig = PromiseConfig()
    log: LogConfig = LogConfig()

    @property
    def store_url(self) -> str:
        return self.store.url or str(self.center.store)


def load(path: Path) -> CenterConfig:
    """Read and validate a center config file; raise ConfigError with every problem listed."""
    return configbase.load(path, CenterConfig)


def config_path(given: str | os.PathLike | None, default: Path = DEFAULT_CENTER_CONFIG) -> Path:
    return configbase.config_path(given, default)

"""Typed, validated configuration (TOML on disk) for the device (the center's: center/config.py).

Every bad value becomes one line naming the key and what was expected; unknown keys are
errors, because a misspelt key silently ignored is a setting the technician thinks is on.
Relative paths are resolved against the config file's directory. Nothing here opens sockets
or databases: this module only turns a file into plain, checked objects.
"""

import os
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, Field, create_model, field_validator, model_validator

from base.configbase import DAYS, BrokerConfig, LogConfig, Seconds, TimeWindow, TimeZone, _Section  # noqa: F401 - DAYS re-exported
from base import configbase
from base.configpath import DEVICE_CONFIG as DEFAULT_CONFIG
from protocol.names import ROLE_NAME
from drivers.health import HealthConfig
from drivers.lock import LockWiring
from drivers.registry import kinds
from drivers.wiring import DeviceName, InputWiring, OutputWiring

from .driverconfig import GpioConfig, LookinConfig
from .helpcoming import HelpComingConfig
from protocol.actions import ACTIONS
from protocol.topics import HOME_ID_RULE, check_home_id


class HomeConfig(_Section):
    id: str
    timezone: TimeZone = "Europe/Stockholm"  # schedules (visit windows) are local times in this zone

    @field_validator("id")
    @classmethod
    def _home_id(cls, value: str) -> str:
        try:
            return check_home_id(value)
        except ValueError:
            raise ValueError(f"expected {HOME_ID_RULE}") from None


class KeysConfig(_Section):
    device: Path = Path("device.key")
    center: Path = Path("center.pub")
    center_next: Path = Path("center.next.pub")  # the center's next key, used only when present


class TrustConfig(_Section):
    path: Path = Path("trust.db")  # staff enrollment, replay cache, audit log (SQLite, 0600)


class CommandsConfig(_Section):
    """How strictly signed commands from the center are judged (see docs/protocol.md)."""

    max_lifetime_s: float = Field(default=300.0, ge=5, le=3600)  # expires - issued may not exceed this
    clock_skew_s: float = Field(default=30.0, ge=0, le=600)
    challenge_ttl_s: Seconds = 600.0  # a new challenge at least this often (and after each use)
    alarm_open_s: Seconds = 3600.0  # an alarm counts as open this long after it was raised
    queue: int = Field(default=256, ge=1, le=100_000)  # commands waiting to be judged; beyond: dropped, counted
    refusals_audited_per_min: int = Field(default=30, ge=1, le=10_000)  # beyond: counted in one summary entry


Role = Annotated[str, Field(pattern=ROLE_NAME)]
Action = Literal[tuple(ACTIONS)]  # type: ignore[valid-type]
UnlockRule = Literal["always", "alarm", "visit", "alarm_or_visit", "never"]


def default_roles() -> dict[str, list[str]]:
    """Who may give which command unless [roles] says otherwise: registered with each action's
    handler (agent/actions.py DEFAULT_ROLES), read when a config is checked."""
    from .actions import DEFAULT_ROLES

    return {role: list(actions) for role, actions in DEFAULT_ROLES.items()}


VisitWindow = TimeWindow  # a planned visit: the same kind of local time window


class LockConfig(LockWiring):
    """A lock (front door, medicine cabinet): its wiring, and who may unlock it and when, per role;
    roles not listed may never unlock it."""

    unlock: dict[Role, UnlockRule] = {"night-staff": "alarm_or_visit", "nurse": "always"}
    visits: list[VisitWindow] = []


LockName = DeviceName
# The default front door on the Trygg board's lock connector.
DEFAULT_LOCKS = {"front-door": {"relay": {"pin": 17}, "bolt": {"pin": 27}, "door": {"pin": 22},
                                "door_alarm": [{"start": "22:00", "end": "07:00"}]}}


class OutboxConfig(_Section):
    path: Path = Path("outbox.db")
    max_bytes: int = Field(default=64 * 1024 * 1024, ge=64 * 1024)
    reserve_bytes: int = Field(default=2 * 1024 * 1024, ge=0, le=1024**3)  # given back for alarms on a full disk
    min_free_bytes: int = Field(default=16 * 1024 * 1024, ge=0)  # below this free space the outbox stops growing
    resend_after_s: Seconds = 30.0
    ttl_event_s: Seconds = 7 * 86400.0
    ttl_telemetry_s: Seconds = 86400.0
    group_commit_ms: float = Field(default=0.0, ge=0, le=1000)
    sweep_s: Seconds = 30.0


class UplinkConfig(_Section):
    inflight: int = Field(default=100, ge=1, le=65535)
    max_unacked: int = Field(default=500, ge=1, le=100_000)
    backoff_min_s: Seconds = 0.5
    backoff_max_s: Seconds = 60.0
    heartbeat_s: int = Field(default=60, ge=1, le=86400)
    tcp_nodelay: bool = True


class FallbackBrokerConfig(BrokerConfig):
    """A second broker (the region's, or one over a cellular modem): used while [broker] has been
    unreachable failover_after_s; [broker] is probed every retry_first_s and used again once it
    takes a session (agent/brokerchoice.py)."""

    failover_after_s: Seconds = 20.0
    retry_first_s: Seconds = 30.0


class ControlConfig(_Section):
    socket: Path = Path("trygg.sock")


class SimulateConfig(_Section):
    """Demos and labs only: drivers on mock pins, driven by a scenario (a plain file, see
    docs/scenarios.md; empty: the built-in compressed night). Events are marked simulated."""

    enabled: bool = False
    scenario: Path | None = None
    speed: float | None = Field(default=None, gt=0, le=100_000)  # simulated s per real s (default: the scenario's)
    repeat: bool = True  # play the scenario again and again, so a demo home keeps sending


class _DeviceConfig(_Section):
    """Everything but the device sections, which come from the registered driver kinds (below)."""

    PATH_KEYS: ClassVar[dict[str, tuple[str, ...]]] = {
        "broker": ("ca", "cert", "key"),
        "broker_fallback": ("ca", "cert", "key"),
        "keys": ("device", "center", "center_next"),
        "trust": ("path",),
        "outbox": ("path",),
        "control": ("socket",),
        "simulate": ("scenario",),
        "help_coming": ("sound_file", "output_file"),
    }
    # What `config validate` and `trygg doctor` check of each named file (base/filecheck.py);
    # sections holding a BrokerConfig get the broker's rules (CA, certificate, private key) anyway.
    FILES: ClassVar[dict[str, str]] = {
        "keys.device": "private", "keys.center": "file",
        "trust.path": "created-private", "outbox.path": "created-private",
        "simulate.scenario": "file", "help_coming.sound_file": "file",
    }
    SERVICE_USER: ClassVar[str] = "trygg"  # systemd/trygg.service: a key at 0640 must have this user's group
    home: HomeConfig
    broker: BrokerConfig
    broker_fallback: FallbackBrokerConfig | None = None  # the second alarm path (optional)
    keys: KeysConfig = KeysConfig()
    trust: TrustConfig = TrustConfig()
    commands: CommandsConfig = CommandsConfig()
    roles: dict[Role, list[Action]] = Field(default_factory=default_roles)  # type: ignore[valid-type]
    health: HealthConfig = HealthConfig()
    lookin: LookinConfig = LookinConfig()
    help_coming: HelpComingConfig = HelpComingConfig()
    gpio: GpioConfig = GpioConfig()
    outbox: OutboxConfig = OutboxConfig()
    uplink: UplinkConfig = UplinkConfig()
    control: ControlConfig = ControlConfig()
    simulate: SimulateConfig = SimulateConfig()
    log: LogConfig = LogConfig()

    @model_validator(mode="after")
    def _rules_name_roles(self) -> "_DeviceConfig":
        for lock, rules in self.locks.items():
            for role in rules.unlock:
                if role not in self.roles:
                    raise ValueError(f"locks.{lock}.unlock names role {role!r}, which is not in [roles]")
        for role in self.lookin.roles if self.lookin.camera != "none" else ():  # no camera: no grant to check
            if role not in self.roles:
                raise ValueError(f"lookin.roles names role {role!r}, which is not in [roles]")
        return self

    @model_validator(mode="after")
    def _one_use_per_pin(self) -> "_DeviceConfig":
        users: dict[int, str] = {}
        for where, pin in self.pins():
            if pin in users:
                raise ValueError(f"{where}: GPIO{pin} is already used by {users[pin]}")
            users[pin] = where
        names: dict[str, str] = {"device": "health"}  # the device-health driver's own name
        for section in DEVICE_SECTIONS:
            for name in getattr(self, section):
                if name in names:
                    raise ValueError(f"{section}.{name}: the name {name!r} is already used by [{names[name]}]; "
                                     "device names must be unique (trygg test NAME)")
                names[name] = section
        return self

    def pins(self) -> list[tuple[str, int]]:
        """Every pin in use, with the key that names it (`mats.bedroom.pressure`)."""
        found = []
        for section in DEVICE_SECTIONS:
            for name, device in getattr(self, section).items():
                for field in type(device).model_fields:
                    value = getattr(device, field)
                    if isinstance(value, (InputWiring, OutputWiring)):
                        found.append((f"{section}.{name}.{field}", value.pin))
        found += [(f"lookin.{f}", getattr(self.lookin, f).pin) for f in ("indicator", "shutter", "servo")
                  if getattr(self.lookin, f)]
        return found


DEVICE_SECTIONS = tuple(kinds())
# A lock's section adds who may unlock it and when (the policy's) to the driver's wiring.
_SECTION_MODELS = {**{k.section: k.config for k in kinds().values()}, "locks": LockConfig}
_SECTION_DEFAULTS = {"locks": DEFAULT_LOCKS}
DeviceConfig = create_model(
    "DeviceConfig", __base__=_DeviceConfig, __module__=__name__,
    **{section: (dict[DeviceName, model], Field(default=_SECTION_DEFAULTS.get(section, {}), validate_default=True))
       for section, model in _SECTION_MODELS.items()},
)
DeviceConfig.__doc__ = "A device's whole config: one table per device under its kind's section ([mats.bedside])."


def load(path: Path, model: type[BaseModel] = DeviceConfig):
    """Read and validate a device config file; raise ConfigError with every problem listed."""
    return configbase.load(path, model)


def config_path(given: str | os.PathLike | None, default: Path = DEFAULT_CONFIG) -> Path:
    """--config wins, then $TRYGG_CONFIG, then the default under /etc/trygg."""
    return configbase.config_path(given, default)


parse, describe_errors, for_display, CONFIG_ENV = (configbase.parse, configbase.describe_errors,  # noqa: E305
                                                   configbase.for_display, configbase.CONFIG_ENV)

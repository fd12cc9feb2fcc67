"""`trygg doctor [--json]`: every check a technician would otherwise find one failure at a time.

Order: the config (every error at once) and the files it names, the keys, the certificates,
the broker (TLS with this identity, the ACL by a probe publish and subscription), the clock,
the disk, GPIO (a pin factory, each pin free), camera and speaker, the daemon and its drivers,
the outbox's oldest message. Each check gives pass / warn / fail with its fix (base/doctor.py);
exit 0 all pass, 1 warnings, 2 failures. A config that does not load still gets its files, the
clock and the pin factory checked. Everything outside (who the service user is, the clock, the
pin factory, the control socket, /proc) comes in through Env, so tests drive the real checks.
"""

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import click

from base import doctor as report
from base.cliutil import config_option, friendly_errors, resolve_config
from base.clock import kernel_clock_synced
from base.configbase import BrokerConfig
from base.configpath import DEVICE_CONFIG
from base.doctor import Verdict, failed
from base.filecheck import SERVICE_USER, ServiceUser

from . import checks_broker, checks_certs, checks_config, checks_daemon, checks_host, control
from .diskspace import free_bytes


def default_pin_factory():
    """gpiozero's default factory (lgpio first), as the daemon's drivers get it."""
    from gpiozero import Device

    Device.ensure_pin_factory()
    return Device.pin_factory


@dataclass
class Env:
    """What the checks read from outside, so tests can hand in their own."""

    user: ServiceUser = field(default_factory=ServiceUser.lookup)
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    clock_synced: Callable[[], bool] = kernel_clock_synced
    pin_factory: Callable[[], object] = default_pin_factory
    request: Callable = control.request
    free_bytes: Callable[[Path], int] = free_bytes
    which: Callable[[str], str | None] = shutil.which
    model_file: Path = Path("/proc/device-tree/model")
    sound_cards: Path = Path("/proc/asound/cards")
    dev: Path = Path("/dev")
    camera_info: Callable | None = None
    broker_timeout: float = 10.0


def diagnose(path: Path, env: Env | None = None) -> list[Verdict]:
    """Every verdict for the device config at path."""
    from . import config as cfgmod

    env = env or Env()
    checked, verdicts = checks_config.check_config_file(Path(path), cfgmod.DeviceConfig, env.user)
    cfg = checked.config
    if cfg is None:
        verdicts += report.run_checks([
            ("clock", lambda: checks_host.check_clock(env.clock_synced())),
            ("gpio", lambda: checks_host.load_factory(env.pin_factory, env.model_file)[1]
             or report.passed("gpio", "a pin factory is available")),
        ])
        return verdicts + [failed("other checks", "not run: the config above does not load",
                                  "fix the config, then run trygg doctor again")]
    keys: dict = {}

    def with_keys():
        keys["device"], found = checks_config.check_keys(cfg)
        return found

    def brokers():
        device = keys.get("device")
        return [v for section in broker_sections(cfg)
                for v in checks_broker.check_broker(cfg, device.sign if device else None, env.broker_timeout, section)]

    status: dict = {}

    def daemon():
        status["answer"], verdict = checks_daemon.ask_status(env.request, cfg.control.socket)
        return verdict

    verdicts += report.run_checks([
        ("keys", with_keys),
        ("certificates", lambda: [v for section in broker_sections(cfg)
                                  for v in checks_certs.check_certificates(cfg, env.now(), section=section)]),
        ("broker", brokers),
        ("clock", lambda: checks_host.check_clock(env.clock_synced())),
        ("disk", lambda: checks_host.check_disk(cfg, env.free_bytes)),
        ("daemon", daemon),
        ("gpio", lambda: checks_host.check_gpio(cfg, env.pin_factory, env.model_file, status.get("answer") is not None)),
        ("camera", lambda: checks_host.check_camera(cfg, env.dev, env.camera_info)),
        ("speaker", lambda: checks_host.check_speaker(cfg, env.which, env.sound_cards)),
        ("drivers", lambda: checks_daemon.check_running(cfg, status.get("answer"))),
        ("outbox", lambda: checks_daemon.check_outbox(cfg, status.get("answer"))),
    ])
    return verdicts


def broker_sections(cfg) -> list[str]:
    """[broker], and a second broker when the config has one ([broker_fallback])."""
    return [name for name in type(cfg).model_fields if isinstance(getattr(cfg, name), BrokerConfig)]


@click.command("doctor")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--user", "service_user", default=SERVICE_USER, show_default=True,
              help="The service user who must be able to read the files (if absent: whoever runs this).")
@click.pass_context
@friendly_errors
def doctor_command(ctx: click.Context, config_path: Path | None, as_json: bool, service_user: str) -> None:
    """Check config, files, certificates, broker and ACL, clock, disk, pins, devices, daemon and outbox.

    Each problem is shown with its fix. Exit 0: all passed; 1: warnings; 2: something failed."""
    verdicts = diagnose(resolve_config(ctx, config_path, DEVICE_CONFIG), Env(user=ServiceUser.lookup(service_user)))
    click.echo(report.render_json(verdicts) if as_json else report.render_text(verdicts))
    ctx.exit(report.exit_code(verdicts))

"""`trygg`: the technician's command line. Thin: parse, call one function, print.

Every command that needs a config takes --config PATH (or $TRYGG_CONFIG; default
/etc/trygg/trygg.toml). Errors print one clear message and exit non-zero: 1 for a problem
with input or state, 3 when the daemon is not running.
"""

import json
from pathlib import Path

import click

from . import control
from base.configpath import DEVICE_CONFIG as DEFAULT_CONFIG
from base.cliutil import config_option, friendly_errors, resolve_config
from base.errors import TryggError
from base.plugins import PluginGroup, config_model

LAZY = {  # the device's own command groups, imported only when one runs (CLI start-up)
    "staff": ("agent.trust_cli:staff", "Enroll, list and revoke the staff whose signed commands this home accepts."),
    "audit": ("agent.trust_cli:audit_group", "Show and verify the hash-chained audit trail."),
    "grant": ("agent.trust_cli:grant_group", "The resident's look-in grant: show it, or change it as the resident (or "
              "their representative) agreed."),
    "center-key": ("agent.trust_cli:center_key", "The care center's public keys on this device (for a key rotation)."),
    "doctor": ("agent.doctor:doctor_command", "Check everything this home needs, each problem with its fix (exit 0 "
               "ok, 1 warnings, 2 failures)."),
}


def _config():
    """The device's config module (pydantic models), imported by the commands that read a config."""
    from . import config

    return config


@click.group(cls=PluginGroup, lazy=LAZY)
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), help="Config file.")
@click.version_option(package_name="trygg")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None) -> None:
    """Trygg: gets every alarm from a resident's home to the night staff, sealed end to end."""
    ctx.obj = {"config": config_path}


@main.command()
@click.option("--home", required=True, help="Home id, e.g. hem-0042 (a-z, 0-9, '-').")
@click.option("--broker", required=True, help="Municipal broker as HOST:PORT.")
@click.option("--ca", required=True, type=click.Path(path_type=Path), help="CA certificate of the broker.")
@click.option("--cert", required=True, type=click.Path(path_type=Path), help="This device's TLS certificate.")
@click.option("--key", required=True, type=click.Path(path_type=Path), help="This device's TLS private key.")
@click.option("--center-key", required=True, type=click.Path(path_type=Path), help="The care center's center.pub.")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Where to write trygg.toml and the device keys.")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), help="Where the outbox lives (default: --dir).")
@click.option("--socket", type=click.Path(path_type=Path), help="Control socket path (default: DIR/trygg.sock).")
@click.option("--kem", type=click.Choice(["x25519", "mlkem768-x25519"]), default="x25519", show_default=True,
              help="HPKE KEM of the device's own key (for acks and commands).")
@click.option("--simulate", is_flag=True, help="Enable simulated inputs (demo and lab only).")
@click.option("--force", is_flag=True, help="Replace existing config and keys.")
@friendly_errors
def init(home, broker, ca, cert, key, center_key, directory, state_dir, socket, kem, simulate, force) -> None:
    """Provision this device: write a working config and the device's own keys."""
    from . import provision

    out = provision.init_device(home, broker, ca, cert, key, center_key, directory, force=force, kem=kem,
                                state_dir=state_dir, socket=socket, simulate=simulate)
    click.echo(f"wrote {out['config']}")
    click.echo(f"device key {out['device_key']} (0600)")
    click.echo(f"give this file to the care center (trygg center add-home): {out['device_pub']}")


@main.command()
@config_option
@click.option("--simulate", is_flag=True,
              help="Every driver on mock pins, playing a scenario (demo and lab only; events marked simulated).")
@click.option("--scenario", type=click.Path(dir_okay=False, path_type=Path),
              help="Scenario file to play with --simulate (default: the built-in compressed night).")
@click.option("--speed", type=click.FloatRange(min=0, min_open=True, max=100_000),
              help="Simulated seconds per real second (default: the scenario's).")
@click.option("--once", is_flag=True, help="Play the scenario once instead of again and again.")
@click.pass_context
@friendly_errors
def run(ctx: click.Context, config_path: Path | None, simulate: bool, scenario: Path | None,
        speed: float | None, once: bool) -> None:
    """Run the daemon (drivers, outbox, uplink) until SIGTERM."""
    from base import logs
    from .daemon import Daemon

    cfg = _config().load(resolve_config(ctx, config_path, DEFAULT_CONFIG))
    if simulate or scenario or speed or once:
        update: dict = {"enabled": True}
        if scenario:
            update["scenario"] = scenario.resolve()
        if speed:
            update["speed"] = speed
        if once:
            update["repeat"] = False
        cfg = cfg.model_copy(update={"simulate": cfg.simulate.model_copy(update=update), "lookin": demo_grant(cfg.lookin)})
    logs.setup(cfg.log.level, home=cfg.home.id)
    Daemon(cfg).run_forever()


@main.command("test")
@config_option
@click.argument("device")
@click.option("--seconds", type=click.FloatRange(min=0, min_open=True), help="Watch this long (default: until Ctrl-C).")
@click.option("--yes", is_flag=True, help="Switch every output without asking.")
@click.pass_context
@friendly_errors
def test_device(ctx: click.Context, config_path: Path | None, device: str, seconds: float | None, yes: bool) -> None:
    """Check one device's wiring: live input states; outputs switched only after you confirm."""
    from .drivertest import run_test

    cfg = _config().load(resolve_config(ctx, config_path, DEFAULT_CONFIG))
    run_test(cfg, device, seconds, (lambda q: True) if yes else (lambda q: click.confirm(q, default=False)), click.echo)


@main.command()
@config_option
@click.argument("dispenser")
@click.option("--count", type=click.IntRange(1, 1000), help="Doses loaded (default: the dispenser's fill_count).")
@click.pass_context
@friendly_errors
def refill(ctx: click.Context, config_path: Path | None, dispenser: str, count: int | None) -> None:
    """Record that a medicine dispenser was refilled (audited); prints the doses and days left."""
    answer = next(control.request(_socket_path(ctx, config_path), {"op": "refill", "dispenser": dispenser, "count": count}))
    click.echo(f"{dispenser}: {answer['doses_left']} doses, {answer['days_left']:g} days")


def _socket_path(ctx: click.Context, config_path: Path | None) -> Path:
    return _config().load(resolve_config(ctx, config_path, DEFAULT_CONFIG)).control.socket


def demo_grant(lookin):
    """In a simulation the camera is the synthetic one; a home without a camera gets the demo grant:
    enrolled night staff may look in at any hour (so a new user can try it), 20 times a night."""
    if lookin.camera != "none":
        return lookin.model_copy(update={"camera": "synthetic"})
    return _config().LookinConfig(camera="synthetic", roles=["night-staff"], max_per_night=20,
                               windows=[{"start": "00:00", "end": "00:00"}])


@main.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@friendly_errors
def status(ctx: click.Context, config_path: Path | None, as_json: bool) -> None:
    """Link state, outbox depth and age per class, losses, unacknowledged alarms, uptime."""
    answer = next(control.request(_socket_path(ctx, config_path), {"op": "status"}))
    answer.pop("done", None)
    if as_json:
        click.echo(json.dumps(answer, indent=1))
        return
    click.echo(f"home {answer['home']}  up {answer['uptime_s']:.0f} s  link {answer['link']}"
               f"  clock {'synchronized' if answer['clock_synced'] else 'NOT synchronized'}")
    if answer.get("broker") == "second":
        click.echo(f"  using the SECOND broker {answer['broker_address']} ([broker] unreachable)")
    if answer.get("last_error") and answer["link"] != "connected":
        click.echo(f"  last error: {answer['last_error']}")
    for cls, c in answer["outbox"]["classes"].items():
        age = "-" if c["oldest_age_s"] is None else f"{c['oldest_age_s']:.0f} s"
        click.echo(f"  {cls:9} waiting {c['depth']:6}  oldest {age}")
    storage = answer.get("storage") or {}
    if storage:
        free = "unknown" if storage["free_bytes"] is None else f"{storage['free_bytes'] / 1048576:.1f} MiB"
        click.echo(f"  storage {storage['state'].upper()}  free {free}  reserve {storage['reserve_bytes'] // 1024} KiB"
                   + (f"  error: {storage['error']}" if storage.get("error") else "")
                   + (f"  HELD IN MEMORY: {answer['held_in_memory']}" if answer.get("held_in_memory") else ""))
    alarms = answer["unacked_alarms"]
    if alarms["depth"]:
        click.echo(f"  UNACKNOWLEDGED ALARMS: {alarms['depth']} (oldest {alarms['oldest_age_s']:.0f} s)")
    for name, driver in answer.get("drivers", {}).items():
        if not driver["running"]:
            click.echo(f"  DEVICE {name} ({driver['kind']}) NOT RUNNING: {driver['error'] or 'starting'}")
    lookin = answer.get("lookin", {})
    if lookin.get("camera", "none") != "none":
        left = "unknown (clock not synchronized)" if lookin["left"] is None else lookin["left"]
        click.echo(f"  look-ins tonight: {lookin['used']} used, {left} left of {lookin['max_per_night']}, "
                   f"{lookin['refused']} refused  ({lookin['privacy']}; {', '.join(lookin['roles']) or 'nobody'})"
                   + ("  CAMERA FAULT" if lookin.get("camera_faulted") else ""))
    lost = {k: v for k in ("dropped", "expired") for c, v in answer["outbox"][k].items() if v}
    click.echo(f"  dropped {answer['outbox']['dropped']}  expired {answer['outbox']['expired']}" if lost else "  nothing lost")


@main.command()
@config_option
@click.argument("cls", metavar="CLASS", type=click.Choice(["alarm", "event", "telemetry"]))
@click.option("--kind", help="Required: a kind a driver sends as CLASS (e.g. fall, door_open, dose_missed), or test.")
@click.option("--count", default=1, show_default=True, type=click.IntRange(1, control.MAX_SIMULATE))
@click.pass_context
@friendly_errors
def simulate(ctx: click.Context, config_path: Path | None, cls: str, kind: str | None, count: int) -> None:
    """Send simulated events (marked so) as a driver would; prints each id once it is committed.

    A simulated alarm reaches the night staff but authorizes nothing: it never opens the door."""
    refused = 0
    for answer in control.request(_socket_path(ctx, config_path),
                                  {"op": "simulate", "class": cls, "kind": kind, "count": count}):
        if answer.get("done"):
            break
        if answer["accepted"]:
            click.echo(answer["id"])
            if answer.get("stored") is False:
                click.echo(f"{answer['id']}: accepted but NOT STORED (the card is full or failing): sent and held in "
                           "memory until the center acknowledges it; a restart before that loses it", err=True)
        else:
            refused += 1
    if refused:
        raise TryggError(f"{refused} event(s) refused: the outbox is full of more important data")


@main.group("config")
def config_group() -> None:
    """Check and show configuration."""


def _model_for(data: dict):
    """A device config, or another installed part's, told apart by its marking section ([center])."""
    return config_model(data) or _config().DeviceConfig


def _load_any(path: Path):
    import tomllib

    try:
        model = _model_for(tomllib.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        model = None
    return _config().load(path, model or _config().DeviceConfig)


@config_group.command("validate")
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@config_option
@click.pass_context
@friendly_errors
def config_validate(ctx: click.Context, path: Path | None, config_path: Path | None) -> None:
    """Check a config file and the files it names; prints every problem, one per line."""
    from base.configcheck import check_config

    target = path or resolve_config(ctx, config_path, DEFAULT_CONFIG)
    check_config(target, _model_for).raise_errors()
    click.echo(f"{target}: ok")


@config_group.command("show")
@config_option
@click.pass_context
@friendly_errors
def config_show(ctx: click.Context, config_path: Path | None) -> None:
    """Show the effective config (defaults filled in; keys by path only, never their contents)."""
    click.echo(json.dumps(_config().for_display(_load_any(resolve_config(ctx, config_path, DEFAULT_CONFIG))), indent=1))


@main.command("lab-pki", hidden=True)
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--client", "clients", multiple=True, required=True, help="Client certificate name (repeat).")
@click.option("--force", is_flag=True)
@friendly_errors
def lab_pki(directory: Path, clients: tuple[str, ...], force: bool) -> None:
    """Create a THROWAWAY lab CA, broker and client certificates (demo and tests only)."""
    from base.labpki import make_lab_pki

    try:
        make_lab_pki(directory, clients, overwrite=force)
    except FileExistsError as exc:
        raise TryggError(str(exc)) from None
    click.echo(f"lab PKI in {directory}")



"""`trygg center ...`: the night-staff side of the command line."""

import signal
import threading
from pathlib import Path

import click

from agent import config as cfgmod
from agent import provision
from agent.cliutil import config_option, friendly_errors, resolve_config
from agent.clock import SystemClock
from agent.errors import TryggError
from agent.keys import load_private


@click.group()
def center() -> None:
    """The care center's receiver: enroll homes, watch events."""


@center.command("init")
@click.option("--dir", "directory", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--broker", required=True, help="Municipal broker as HOST:PORT.")
@click.option("--ca", required=True, type=click.Path(path_type=Path))
@click.option("--cert", required=True, type=click.Path(path_type=Path))
@click.option("--key", required=True, type=click.Path(path_type=Path))
@click.option("--kem", type=click.Choice(["x25519", "mlkem768-x25519"]), default="x25519", show_default=True,
              help="HPKE KEM devices seal events with (mlkem768-x25519 = post-quantum hybrid).")
@click.option("--name", default="center", show_default=True,
              help="This receiver's MQTT client id (unique per receiver; a-z, 0-9, '-').")
@click.option("--force", is_flag=True, help="Replace existing config and keys.")
@friendly_errors
def center_init(directory, broker, ca, cert, key, kem, name, force) -> None:
    """Write a receiver config, the center's keys, and center.pub for devices."""
    out = provision.init_center(broker, ca, cert, key, directory, force=force, kem=kem, name=name)
    click.echo(f"wrote {out['config']}")
    click.echo(f"center key {out['center_key']} (0600)")
    click.echo(f"give this file to technicians (trygg init --center-key): {out['center_pub']}")


@center.command("add-home")
@click.argument("public_key", type=click.Path(dir_okay=False, path_type=Path))
@config_option
@click.option("--force", is_flag=True, help="Replace the home's existing key.")
@click.pass_context
@friendly_errors
def add_home(ctx, public_key: Path, config_path, force: bool) -> None:
    """Enroll a home's device.pub so its events are trusted."""
    cfg = cfgmod.load(resolve_config(ctx, config_path, cfgmod.DEFAULT_CENTER_CONFIG), cfgmod.CenterConfig)
    click.echo(f"enrolled {provision.add_home(cfg.center.homes_dir, public_key, force)}")


@center.command("watch")
@config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per event on stdout.")
@click.pass_context
@friendly_errors
def watch(ctx, config_path, as_json: bool) -> None:
    """Receive, verify, record and acknowledge events from every home, and show them."""
    from agent import logs

    from .console import Console
    from .homes import HomeRegistry
    from .receiver import Receiver
    from .store import EventStore

    cfg = cfgmod.load(resolve_config(ctx, config_path, cfgmod.DEFAULT_CENTER_CONFIG), cfgmod.CenterConfig)
    logs.setup(cfg.log.level if not as_json else "warning")
    store = EventStore(cfg.center.store)
    homes = HomeRegistry(cfg.center.homes_dir, store.replay_marks())
    receiver = Receiver(cfg, load_private(cfg.center.key), homes, store,
                        Console(as_json), SystemClock())
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: receiver.stop())
    worker = threading.Thread(target=receiver.run, name="receiver")
    worker.start()
    while worker.is_alive():
        worker.join(0.5)
    store.close()
    if receiver.failed:
        raise TryggError(f"receiver stopped: {receiver.failed}")

"""What every `trygg` command shares: --config resolution and turning errors into exit codes."""

import functools
import sys
from pathlib import Path

import click

from .configpath import CENTER_CONFIG, DEVICE_CONFIG, config_path
from .errors import DaemonNotRunning, TryggError

EXIT_ERROR, EXIT_NOT_RUNNING = 1, 3


def friendly_errors(fn):
    """Turn TryggErrors into one line on stderr and an exit code, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DaemonNotRunning as exc:
            click.echo(f"trygg: {exc}", err=True)
            sys.exit(EXIT_NOT_RUNNING)
        except TryggError as exc:
            click.echo(f"trygg: {exc}", err=True)
            sys.exit(EXIT_ERROR)

    return wrapper


def config_option(fn):
    """--config on every command, also accepted before the command name; its help names the
    default of the side the command is on (a `trygg center` command is defined under center/)."""
    default = CENTER_CONFIG if fn.__module__.split(".")[0] == "center" else DEVICE_CONFIG
    return click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
                        help=f"Config file (default $TRYGG_CONFIG, else {default}).")(fn)


def resolve_config(ctx: click.Context, given: Path | None, default: Path) -> Path:
    """--config (given here or before the command name), then $TRYGG_CONFIG, then this side's default."""
    return config_path(given or (ctx.obj or {}).get("config"), default)


def grant_change_options(fn):
    """The look-in grant's changeable parts, the same on the device (`trygg grant set`) and at the
    center (`trygg center grant`); unset options are None. The device validates the values."""
    for option in reversed([
        click.option("--privacy", type=click.Choice(["none", "blur", "silhouette"])),
        click.option("--max-per-night", type=click.IntRange(0, 50)),
        click.option("--roles", help="Comma-separated roles from the device's [roles], e.g. night-staff,nurse."),
        click.option("--windows", help='Comma-separated local windows, e.g. "22:00-06:00" (every day).'),
        click.option("--times", help='Comma-separated agreed look-in times, e.g. "23:00,03:00" ("" clears them).'),
        click.option("--tolerance", "tolerance_s", type=click.IntRange(0, 6 * 3600),
                     help="Seconds either side of an agreed time."),
    ]):
        fn = option(fn)
    return fn

"""What every `trygg` command shares: --config resolution and turning errors into exit codes."""

import functools
import sys
from pathlib import Path

import click

from . import config as cfgmod
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
    """--config on every command, also accepted before the command name."""
    return click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
                        help="Config file (default $TRYGG_CONFIG or /etc/trygg/trygg.toml).")(fn)


def resolve_config(ctx: click.Context, given: Path | None, default: Path = cfgmod.DEFAULT_CONFIG) -> Path:
    return cfgmod.config_path(given or (ctx.obj or {}).get("config"), default)

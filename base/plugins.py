"""The one `trygg` command both sides share, without either side importing the other.

The device's CLI (agent/cli.py) is the entry point; other installed parts of Trygg (the
receiving side) add their command groups and config models through entry points in
pyproject.toml (groups `trygg.cli` and `trygg.configs`), the standard plugin mechanism. A group
is imported only when it is run, so `trygg --help` or `trygg status` on a Pi never loads
receiving-side code, and a Pi installed without it simply has no `trygg center`.
"""

import importlib
from importlib.metadata import entry_points

import click

COMMANDS = "trygg.cli"
CONFIGS = "trygg.configs"


class PluginGroup(click.Group):
    """A click group that also offers the command groups registered under COMMANDS, and its own
    `lazy` groups ({name: ("module:attribute", short help)}): each imported only when it runs."""

    def __init__(self, *args, lazy: dict[str, tuple[str, str]] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}

    def _plugins(self) -> dict:
        found = {name: _Target(target) for name, (target, _) in self.lazy.items()}
        return {**found, **{ep.name: ep for ep in entry_points(group=COMMANDS)}}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._plugins()})

    def get_command(self, ctx: click.Context, name: str):
        command = super().get_command(ctx, name)
        if command is None and name in self._plugins():
            command = self._plugins()[name].load()
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Listing a plugin's group must not import it: it is named with a pointer to its own help."""
        rows = []
        for name in self.list_commands(ctx):
            command = super().get_command(ctx, name)
            if command is None:
                default = f"commands of the installed part '{name}' (trygg {name} --help)"
                rows.append((name, self.lazy.get(name, ("", default))[1]))
            elif not command.hidden:
                rows.append((name, command.get_short_help_str(formatter.width - 6 - len(name))))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class _Target:
    """"module:attribute", loaded like an entry point."""

    def __init__(self, target: str) -> None:
        self.target = target

    def load(self):
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)


def config_model(sections) -> type | None:
    """The config model of an installed part whose marking section is among these, if any."""
    for ep in entry_points(group=CONFIGS):
        if ep.name in sections:
            return ep.load()
    return None

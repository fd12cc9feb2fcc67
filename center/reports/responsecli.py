"""`trygg center report response|resident`: the monthly response-time report and a resident's record.

Thin: parse, build the report's data (reports/response.py, reports/resident.py), render it in
the format asked for, write it. JSON and HTML go to stdout unless --out; a PDF needs --out or a
stdout that is not a terminal. A file written holds personal data: it is created 0600.
`add_to(report_group)` adds both commands to the `report` group.
"""

import json
import sys
from pathlib import Path

import click

from base.cliutil import config_option, friendly_errors
from base.clock import SystemClock
from base.errors import TryggError


def _emit(data: dict, to_html, fmt: str, out: Path | None) -> None:
    """Render in the format asked for and write it as the morning report does (0600 file, or
    stdout; never a PDF to a terminal)."""
    from ..reportcli import write_report

    if fmt == "json":
        payload = (json.dumps(data, ensure_ascii=False, indent=1) + "\n").encode()
    elif fmt == "html":
        payload = to_html(data).encode()
    else:
        from .pdf import html_to_pdf

        if out is None and sys.stdout.isatty():  # before the seconds a PDF takes
            raise TryggError("--format pdf writes binary: give --out FILE (or redirect stdout)")
        payload = html_to_pdf(to_html(data))
    write_report(payload, out, binary=fmt == "pdf")


def _open(ctx, config_path):
    from ..casecore import load_config
    from ..store import EventStore

    cfg = load_config(ctx, config_path)
    return cfg, EventStore(cfg.store_url)


MONTH_HELP = "The month, as 2026-11 (counted in [promise] time_zone, Europe/Stockholm by default)."
OUT_HELP = "Write to this file (0600) instead of stdout."


@click.command("response")
@click.option("--month", required=True, help=MONTH_HELP)
@click.option("--format", "fmt", type=click.Choice(["html", "json", "pdf"]), default="html", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help=OUT_HELP)
@config_option
@click.pass_context
@friendly_errors
def response(ctx, month, fmt, out, config_path) -> None:
    """Response times of a month against the municipality's promise ([promise] in the config)."""
    from . import response as rep

    cfg, store = _open(ctx, config_path)
    try:
        data = rep.report(cfg, store, month, SystemClock().time())
    finally:
        store.close()
    _emit(data, rep.to_html, fmt, out)


@click.command("resident")
@click.argument("home")
@click.option("--month", required=True, help=MONTH_HELP)
@click.option("--format", "fmt", type=click.Choice(["pdf", "html", "json"]), default="pdf", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help=OUT_HELP)
@config_option
@click.pass_context
@friendly_errors
def resident(ctx, home, month, fmt, out, config_path) -> None:
    """One resident's record of a month: every look-in and every entry through the lock (GDPR art. 15)."""
    from . import resident as rep

    cfg, store = _open(ctx, config_path)
    try:
        data = rep.report(cfg, store, home, month, SystemClock().time())
    finally:
        store.close()
    _emit(data, rep.to_html, fmt, out)


def add_to(report_group: click.Group) -> None:
    """Add `response` and `resident` to the `trygg center report` group."""
    report_group.add_command(response)
    report_group.add_command(resident)

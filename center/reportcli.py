"""`trygg center report ...`: the reports people read in daylight. This module owns the `report`
group and `report morning` (the day nurse's morning report); the response-time report and the
resident's record add themselves to the group (reports/responsecli.py: add_to).

Thin: parse, build the report's data (reports/morning.py), render the format asked for, write
it. JSON and HTML go to stdout unless --out; a PDF needs --out or a stdout that is not a
terminal. A file written holds personal data: it is created 0600. Bad input is one line.
"""

import json
import os
import sys
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from base.cliutil import config_option, friendly_errors
from base.clock import SystemClock
from base.errors import TryggError
from protocol.times import check_hhmm, check_timezone


def write_report(payload: bytes, out: Path | None, binary: bool) -> None:
    """To --out (created 0600: it names residents) or stdout (a PDF not to a terminal)."""
    if out is None:
        if binary and sys.stdout.isatty():
            raise TryggError("--format pdf writes binary: give --out FILE (or redirect stdout)")
        sys.stdout.buffer.write(payload)
        sys.stdout.buffer.flush()
        return
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
    except OSError as exc:
        raise TryggError(f"--out {out}: {exc.strerror}") from None
    click.echo(f"wrote {out} ({len(payload)} bytes)", err=True)


def render(data: dict, fmt: str) -> bytes:
    """The report's data in one format: JSON, HTML, or the PDF of that HTML."""
    if fmt == "json":
        return (json.dumps(data, ensure_ascii=False, indent=1) + "\n").encode()
    from .reports.morninghtml import to_html

    html = to_html(data)
    if fmt == "html":
        return html.encode()
    from .reports.pdf import html_to_pdf

    return html_to_pdf(html)


def parse_day(text: str | None, zone: str, now: float) -> date:
    if not text:
        return datetime.fromtimestamp(now, ZoneInfo(zone)).date()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise TryggError(f"--date must be a date like 2026-12-01, got {text!r}") from None


def _checked(option: str, check, value: str) -> str:
    try:
        return check(value)
    except ValueError as exc:
        raise TryggError(f"{option}: {exc}, got {value!r}") from None


def register(center: click.Group) -> None:
    """Add `trygg center report` (and its commands) to `trygg center`."""

    @center.group("report")
    def report() -> None:
        """Reports for daylight: the morning report, response times, a resident's record."""

    @report.command("morning")
    @click.option("--date", "day", help="The morning (YYYY-MM-DD) whose night to report; default today.")
    @click.option("--home", help="Only this home (default: every enrolled home).")
    @click.option("--format", "fmt", type=click.Choice(["html", "json", "pdf"]), default="html", show_default=True)
    @click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write here (0600), not stdout.")
    @click.option("--zone", default="Europe/Stockholm", show_default=True, help="The homes' time zone (IANA).")
    @click.option("--night", default="22:00-07:00", show_default=True, help="The night window, local HH:MM-HH:MM.")
    @click.option("--no-keep", is_flag=True, help="Write nothing to the store (no sealed day digests kept).")
    @config_option
    @click.pass_context
    @friendly_errors
    def morning(ctx, day, home, fmt, out, zone, night, no_keep, config_path) -> None:
        """The day nurse's morning report: last night per home, flags against each home's own baseline."""
        from .casecore import load_config
        from .reports.morning import Settings
        from .reports.morning import report as build

        zone = _checked("--zone", check_timezone, zone)
        start, sep, end = night.partition("-")
        if not sep:
            raise TryggError(f"--night must be HH:MM-HH:MM (e.g. 22:00-07:00), got {night!r}")
        start, end = _checked("--night", check_hhmm, start.strip()), _checked("--night", check_hhmm, end.strip())
        cfg = load_config(ctx, config_path)
        now = SystemClock().time()
        data = build(cfg, parse_day(day, zone, now), home, Settings(zone, start, end, dict(cfg.cases.outcomes)),
                     now, keep=not no_keep)
        write_report(render(data, fmt), out, binary=fmt == "pdf")

    try:
        from .reports.responsecli import add_to
    except ImportError:  # the other reports not in this build
        return
    add_to(report)

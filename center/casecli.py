"""`trygg center cases|case|accept|on-site|forward|close|reopen|homes|audit`: the night's work.

Each case action is signed with the acting staff member's key (center/staffsign.py) and
checked against their enrolled public key before anything changes; a bad case id, a closed
case closed again, an unknown outcome or staff member is one line and exit 1, nothing changed.
Accepting a case also tells the resident that help is coming (a signed `help_coming` command
to the home); the device's signed answer goes into the case. Exit 0 means the case action was
recorded, whatever the home answered; that answer is printed, and in the case.
"""

import json
import re
from datetime import datetime

import click

from base.cliutil import config_option, friendly_errors
from base.clock import SystemClock
from base.errors import TryggError

from .brokerlimits import BrokerLimits

SINCE_RE = re.compile(r"^(\d{1,5})([mhd])$")


def parse_since(text: str | None, now: float) -> float | None:
    """`2h`, `30m`, `7d` before now, or an ISO time; None for no bound."""
    if not text:
        return None
    match = SINCE_RE.fullmatch(text.strip())
    if match:
        n, unit = int(match[1]), match[2]
        return now - n * {"m": 60, "h": 3600, "d": 86400}[unit]
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise TryggError(f"--since must be like 30m, 2h, 7d or an ISO time (2026-12-01T22:00), got {text!r}") from None
    return (at if at.tzinfo else at.astimezone()).timestamp()


def _desk(ctx, config_path):
    from .casecore import open_desk

    return open_desk(ctx, config_path)


def register(center: click.Group) -> None:
    """Add the case commands to `trygg center`."""

    @center.command("cases")
    @click.option("--open", "open_only", is_flag=True, help="Only cases not yet closed.")
    @click.option("--since", help="Cases opened since: 30m, 2h, 7d or an ISO time (open cases always show).")
    @click.option("--json", "as_json", is_flag=True, help="A JSON array of case objects.")
    @click.option("--lang", type=click.Choice(["sv", "en"]), help="Language of the lines (default Swedish).")
    @config_option
    @click.pass_context
    @friendly_errors
    def cases(ctx, open_only, since, as_json, lang, config_path) -> None:
        """Alarm cases: open ones first, newest on top."""
        from .casecore import case_line

        with _desk(ctx, config_path) as (cfg, desk):
            found = desk.listing(open_only, parse_since(since, SystemClock().time()))
            if as_json:
                click.echo(json.dumps([c.to_json() for c in found], ensure_ascii=False))
                return
            if not found:
                click.echo("inga ärenden" if (lang or "sv") == "sv" else "no cases")
            for case in found:
                click.echo(case_line(case, lang))

    @center.command("case")
    @click.argument("case_id")
    @click.option("--json", "as_json", is_flag=True, help="The case object with its history.")
    @click.option("--lang", type=click.Choice(["sv", "en"]))
    @config_option
    @click.pass_context
    @friendly_errors
    def case(ctx, case_id, as_json, lang, config_path) -> None:
        """One case: its alarms, who took it, response times and every change."""
        from .casecore import case_details

        with _desk(ctx, config_path) as (cfg, desk):
            found = desk.get(desk.resolve(case_id))
            history = desk.history(found.id)
            if as_json:
                click.echo(json.dumps({**found.to_json(), "history": history}, ensure_ascii=False))
            else:
                click.echo(case_details(found, history, lang))

    def action(name: str, verb: str, doc: str, *extra):
        def command(ctx, case_id, as_staff, config_path, **args) -> None:
            from .casecore import act

            act(ctx, config_path, case_id, as_staff, verb, args)
        command.__doc__ = doc
        for option in reversed([click.argument("case_id", metavar="CASE"),
                                click.option("--as", "as_staff", required=True,
                                             help="The staff member doing it (their key signs it)."),
                                *extra, config_option, click.pass_context, friendly_errors]):
            command = option(command)
        center.command(name)(command)

    help_options = [click.option("--no-help-coming", "no_help_coming", is_flag=True,
                                 help="Do not tell the resident (the home is being handled another way)."),
                    click.option("--timeout", default=15.0, show_default=True, type=click.FloatRange(0.1, 600),
                                 help="Seconds to wait for the home's answer to help-coming.")]
    action("accept", "accept", "Take a case (\"I take it\"); the resident is told help is coming.", *help_options)
    action("on-site", "on_site", "Record that you are with the resident (done by itself on your confirmed unlock).")
    action("reopen", "reopen", "Reopen a closed case.")
    action("forward", "forward", "Hand a case to a colleague.",
           click.option("--to", required=True, help="The colleague who takes it (an enrolled staff member)."))
    action("close", "close", "Close a case with an outcome and an optional note.",
           click.option("--outcome", required=True, help="One of the configured outcome ids ([cases] outcomes)."),
           click.option("--note", help="What happened, in a few words (sealed at rest)."))

    @center.command("homes")
    @click.option("--json", "as_json", is_flag=True, help="A JSON array, one object per home.")
    @click.option("--lang", type=click.Choice(["sv", "en"]))
    @config_option
    @click.pass_context
    @friendly_errors
    def homes(ctx, as_json, lang, config_path) -> None:
        """Every home at a glance: those needing a person or a technician first."""
        from .fleet import fleet_rows, row_line

        with _desk(ctx, config_path) as (cfg, desk):
            rows = fleet_rows(cfg, desk, SystemClock().time())
        if as_json:
            click.echo(json.dumps(rows, ensure_ascii=False))
            return
        for row in rows:
            click.echo(row_line(row, lang))

    @center.command("receivers")
    @click.option("--json", "as_json", is_flag=True, help="A JSON array, one object per receiving service.")
    @config_option
    @click.pass_context
    @friendly_errors
    def receivers(ctx, as_json, config_path) -> None:
        """The receiving services: alive or not, and what each learned of the broker's limits, with
        a warning where they are too small for the homes served."""
        from .casecore import load_config
        from .store import EventStore

        cfg = load_config(ctx, config_path)
        store = EventStore(cfg.store_url)
        try:
            rows = store.receiver_reports()
        finally:
            store.close()
        now = SystemClock().time()
        out = [{"name": name, "state": state, "since": since, "beat_age_s": round(now - beat, 1),
                "broker": json.loads(broker) if broker else None} for name, state, since, beat, broker in rows]
        if as_json:
            click.echo(json.dumps(out, ensure_ascii=False))
            return
        if not out:
            click.echo("no receiving service has run against this store")
        for r in out:
            click.echo(f"{r['name']}: {r['state']} (last heard {r['beat_age_s']:g} s ago)")
            for lane, seen in sorted((r["broker"] or {}).get("lanes", {}).items()):
                click.echo(f"  {lane} lane: {BrokerLimits(**seen['limits']).describe()}")
                for warning in seen["warnings"]:
                    click.echo(f"  WARNING: {warning}")

    @center.group("audit")
    def audit() -> None:
        """Check audit chains at the center: a home's forwarded audit, and the case log."""

    @audit.command("verify")
    @click.argument("home")
    @click.option("--json", "as_json", is_flag=True)
    @config_option
    @click.pass_context
    @friendly_errors
    def audit_verify(ctx, home, as_json, config_path) -> None:
        """Check a home's forwarded audit chain: gaps, reordering, edits; names the first bad entry."""
        from .casecore import verify_home_audit

        verify_home_audit(ctx, config_path, home, as_json)

    @audit.command("cases")
    @click.option("--json", "as_json", is_flag=True)
    @config_option
    @click.pass_context
    @friendly_errors
    def audit_cases(ctx, as_json, config_path) -> None:
        """Check the center's case log chain; names the first entry removed, reordered or changed."""
        from . import caselog

        with _desk(ctx, config_path) as (cfg, desk):
            check = caselog.verify(desk.db)
        if as_json:
            click.echo(json.dumps(check.__dict__))
        else:
            click.echo(f"case log: {check.entries} entries, " + ("chain intact" if check.ok else check.problem))
        if not check.ok:
            raise SystemExit(2)


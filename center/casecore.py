"""What the case commands do (casecli.py holds only their options): open the store, sign and
apply a staff member's case action, tell the resident help is coming, print cases readably."""

import json
from contextlib import contextmanager
from datetime import datetime

import click

from base.cliutil import resolve_config
from base.clock import SystemClock
from base.errors import TryggError
from base.keys import load_public
from protocol.actions import ACTIONS

from . import config as cfgmod
from . import keyring
from .cases import Case
from .service import case_desk
from .staffsign import SignedAction
from .store import EventStore
from .wording import Words, language


def load_config(ctx, config_path) -> cfgmod.CenterConfig:
    return cfgmod.load(resolve_config(ctx, config_path, cfgmod.DEFAULT_CENTER_CONFIG))


@contextmanager
def open_desk(ctx, config_path):
    cfg = load_config(ctx, config_path)
    store = EventStore(cfg.store_url)
    try:
        yield cfg, case_desk(cfg, store)
    finally:
        store.close()


def act(ctx, config_path, ref: str, as_staff: str, verb: str, args: dict) -> None:
    """Sign the action with the staff member's key, apply it, print the case as it now stands."""
    tell = verb == "accept" and not args.pop("no_help_coming", False)
    timeout = args.pop("timeout", 15.0)
    with open_desk(ctx, config_path) as (cfg, desk):
        identity = keyring.staff_identity(cfg, as_staff)
        case_id = desk.resolve(ref)
        now = SystemClock().time()
        case = desk.act(SignedAction.make(identity, case_id, verb, now, args), now)
        click.echo(case_line(case, None, change=verb))
        if tell:
            tell_resident(cfg, desk, case, identity, timeout)


def tell_resident(cfg, desk, case: Case, identity, timeout: float) -> None:
    """A signed help_coming command to the home; its signed answer (or its absence) goes into the case."""
    from .commander import Commander, NoAnswer

    words = Words(language())
    if "help_coming" not in ACTIONS:
        click.echo("trygg: this version cannot send help-coming to homes", err=True)
        return
    try:
        home_key = load_public(cfg.center.homes_dir / f"{case.home}.pub")
        with Commander(cfg, keyring.opening_keys(cfg), identity, home_key, SystemClock()) as commander:
            answer = commander.send("help_coming", {"case": case.id}, timeout=timeout)
        verdict = {**answer.result, "outcome": answer.outcome, "staff": identity.name}
    except NoAnswer as exc:
        verdict = {"outcome": "no_answer", "reason": str(exc), "staff": identity.name}
    desk.record_help_coming(case.id, verdict, SystemClock().time())
    what = ", ".join(f"{k}={verdict[k]}" for k in ("led", "spoken", "reason") if verdict.get(k) not in (None, ""))
    line = f"{words['help_coming']}: {str(verdict['outcome']).upper()}" + (f" ({what})" if what else "")
    click.echo(line, err=verdict["outcome"] != "done")


def _hhmm(at: float | None) -> str:
    return datetime.fromtimestamp(at).astimezone().strftime("%H:%M:%S") if at else "–"


def case_line(case: Case, lang: str | None, change: str | None = None) -> str:
    """`…3f9c2a1b  home-7  Fall, Larmknappen tryckt  taget av anna  öppnat 03:02:11`"""
    w = Words(language(lang))
    who = case.on_site_by if case.state == "on_site" else case.accepted_by
    kinds = ", ".join(w.kind(k) for k in case.kinds)
    head = f"{w.change(change)}  " if change else ""
    escalated = f"  ESKALERAT {case.escalation_count}" if case.escalation_count and case.state == "open" else ""
    outcome = f" ({case.outcome})" if case.outcome else ""
    return (f"{head}{case.id[-8:]}  {case.home}  {kinds}  {w.state(case.state, who)}{outcome}  "
            f"{_hhmm(case.opened)}{escalated}{'  FÖRSENAT' if case.overdue and case.state != 'closed' else ''}")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def case_details(case: Case, history: list[dict], lang: str | None) -> str:
    """What staff read about one case: in their language, local times, no raw field names."""
    w = Words(language(lang))
    sv = w.lang == "sv"
    times = case.to_json()["response_s"]
    lines = [case_line(case, lang),
             f"  {'ärende' if sv else 'case'} {case.id}",
             f"  {'larm' if sv else 'alarms'}: {', '.join(case.alarms) or '–'}",
             ("  svarstid: taget efter {}, på plats efter {}, avslutat efter {}" if sv else
              "  response: taken after {}, on site after {}, closed after {}").format(
                 *(_duration(times[k]) for k in ("to_accept", "to_on_site", "to_close")))]
    if case.help_coming:
        verdict = case.help_coming
        lines.append(f"  {w['help_coming']}: {str(verdict.get('outcome')).upper()}"
                     + (f" ({verdict['reason']})" if verdict.get("reason") else ""))
    if case.note:
        lines.append(f"  {'anteckning' if sv else 'note'}: {case.note}")
    for entry in history:
        at = datetime.fromisoformat(entry["at"]).timestamp()
        change = entry["action"] + (f":{entry['n']}" if entry.get("n") else "")
        who = f"  {entry['by']}" if entry.get("by") else ""
        to = f" → {entry['args']['to']}" if isinstance(entry.get("args"), dict) and entry["args"].get("to") else ""
        called = f"  ({w['on_call_staff']}: {', '.join(entry['to'])})" if entry.get("to") else ""
        lines.append(f"  {_hhmm(at)}  {w.change(change)}{who}{to}{called}")
    return "\n".join(lines)


def verify_home_audit(ctx, config_path, home: str, as_json: bool) -> None:
    """Check the audit chain a home forwarded (as forwarded: sealed details, so every hash is
    recomputed); exit 2 naming the first bad entry."""
    from protocol.topics import check_home_id

    from .auditchain import check, render
    from .homes import HomeRegistry
    from .opening import Opener

    try:
        check_home_id(home)
    except ValueError as exc:
        raise TryggError(f"HOME: {exc}") from None
    cfg = load_config(ctx, config_path)
    store = EventStore(cfg.store_url)
    try:
        rows = [r for r in store.events_of(home) if r.cls == "event"]
    finally:
        store.close()
    opener = Opener(HomeRegistry(cfg.center.homes_dir), keyring.opening_keys(cfg), None, SystemClock())
    bodies = []
    for row in rows:
        try:
            event = opener.open_event(row.envelope, row.topic, open_audit=False)
        except (TryggError, ValueError) as exc:
            raise TryggError(f"a recorded event of {home} ({row.id}) no longer opens: {exc}") from None
        if event.kind == "audit":
            bodies.append(event.body)
    if not bodies:
        raise TryggError(f"no audit entries from {home} at this center (is the home enrolled and sending?)")
    report = check(bodies)
    click.echo(json.dumps(report.to_json(), ensure_ascii=False) if as_json else render(report))
    if not report.ok:
        raise SystemExit(2)

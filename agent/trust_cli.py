"""`trygg staff`, `trygg audit`, `trygg grant` and `trygg center-key`: the technician's trust commands on a device.

They work on trust.db directly, with or without the daemon running (SQLite serializes the
writes); the daemon sees enrollment changes at the next command and forwards new audit
entries to the center within a second. Thin: parse, call one function, print.

They open trust.db with the keys it is sealed with (trustdb.AtRest: the device key, the
active center key), as the daemon does, so what they write is sealed the same way, staff names
can be shown, and a trust.db from an older version is sealed on first use. `audit show`
shows what the device can read of each entry (seq, time, kind, the non-personal fields); the
full trail is read at the center.
"""

import json
import re
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import click

from . import config as cfgmod
from .audit import AuditLog
from .centerkeys import CenterKeys, center_kid
from base.clock import SystemClock
from base.cliutil import config_option, friendly_errors, grant_change_options, resolve_config
from base.errors import ConfigError, TryggError
from base.keys import load_private, load_public
from .staff import StaffRegistry
from .trustdb import AtRest, TrustDB

EXIT_AUDIT_BROKEN = 2
_DURATION = re.compile(r"^(\d+)([smhd])$")


def _open(ctx, config_path) -> tuple[cfgmod.DeviceConfig, TrustDB, AuditLog]:
    cfg = cfgmod.load(resolve_config(ctx, config_path, cfgmod.DEFAULT_CONFIG))
    db = TrustDB(cfg.trust.path)
    try:
        center = CenterKeys(cfg.keys.center, cfg.keys.center_next, db)
        db.at_rest = AtRest(cfg.home.id, load_private(cfg.keys.device), lambda: center.active.kem)
    except BaseException:
        db.close()
        raise
    return cfg, db, AuditLog(db, SystemClock())


def parse_since(text: str, now: datetime) -> float:
    """'2h', '30m', '7d', '90s', or an ISO 8601 time (UTC unless it names an offset)."""
    m = _DURATION.fullmatch(text.strip())
    if m:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m[2]]
        return (now - timedelta(**{unit: int(m[1])})).timestamp()
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"--since: expected a duration like 2h, 30m, 7d or a time like 2026-11-24T03:00, got {text!r}") from None
    return (when if when.tzinfo else when.replace(tzinfo=timezone.utc)).timestamp()


# -- staff ------------------------------------------------------------------------------------
@click.group()
def staff() -> None:
    """Enroll, list and revoke the staff whose signed commands this home accepts."""


@staff.command("add")
@click.argument("name")
@click.option("--key", "key_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The staff member's public key file (from trygg center staff-key).")
@click.option("--role", required=True, help="A role from [roles] in the config, e.g. night-staff, nurse, technician.")
@click.option("--force", is_flag=True, help="Replace an enrolled member's key or role.")
@config_option
@click.pass_context
@friendly_errors
def staff_add(ctx, name: str, key_file: Path, role: str, force: bool, config_path) -> None:
    """Enroll a staff member's key with a role (audited)."""
    cfg, db, audit = _open(ctx, config_path)
    with db:
        member = StaffRegistry(db, audit, cfg.roles).add(name, load_public(key_file), role, force)
    click.echo(f"enrolled {member.name} as {member.role} (key {member.kid}); may give: {', '.join(cfg.roles[role])}")


@staff.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per member.")
@click.option("--all", "show_all", is_flag=True, help="Include revoked members.")
@config_option
@click.pass_context
@friendly_errors
def staff_list(ctx, as_json: bool, show_all: bool, config_path) -> None:
    """Enrolled staff, their roles and key ids."""
    cfg, db, audit = _open(ctx, config_path)
    with db:
        members = [m for m in StaffRegistry(db, audit, cfg.roles).members() if show_all or m.active]
    for m in members:
        if as_json:
            click.echo(json.dumps(m.to_json()))
        else:
            state = "active" if m.active else "REVOKED"
            click.echo(f"{m.name:24} {m.role:14} {m.kid}  {state}")
    if not members and not as_json:
        click.echo("no staff enrolled: nobody can send this home commands")


@staff.command("remove")
@click.argument("name")
@config_option
@click.pass_context
@friendly_errors
def staff_remove(ctx, name: str, config_path) -> None:
    """Revoke a staff member's key at once (audited; kept in the list as revoked)."""
    cfg, db, audit = _open(ctx, config_path)
    with db:
        StaffRegistry(db, audit, cfg.roles).remove(name)
    click.echo(f"revoked {name}")


# -- audit ------------------------------------------------------------------------------------
@click.group("audit")
def audit_group() -> None:
    """Show and verify the hash-chained audit trail."""


@audit_group.command("show")
@click.option("--since", help="Only entries since: a duration (2h, 30m, 7d) or an ISO time.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per entry.")
@config_option
@click.pass_context
@friendly_errors
def audit_show(ctx, since: str | None, as_json: bool, config_path) -> None:
    """The audit entries, oldest first: what the device can read (the rest is read at the center)."""
    _, db, audit = _open(ctx, config_path)
    start = parse_since(since, datetime.now(timezone.utc)) if since else None
    with db:
        entries = audit.entries(since=start)
    for e in entries:
        if as_json:  # "sealed": true when the rest of the detail is sealed to the center
            click.echo(json.dumps({**e.to_json(), "sealed": e.sealed is not None}, ensure_ascii=False))
            continue
        when = datetime.fromtimestamp(e.time).astimezone().isoformat(timespec="seconds")
        detail = " ".join(f"{k}={v}" for k, v in e.detail.items() if v not in (None, ""))
        more = " (+sealed)" if e.sealed is not None else ""
        click.echo(f"{e.seq:6} {when}{'' if e.synced else '?'} {e.kind:22} {detail}{more}".rstrip())


@audit_group.command("verify")
@config_option
@click.pass_context
@friendly_errors
def audit_verify(ctx, config_path) -> None:
    """Check the chain; exit 2 naming the first altered, removed or reordered entry."""
    _, db, audit = _open(ctx, config_path)
    with db:
        verdict = audit.verify()
    if verdict.ok:
        click.echo(f"audit trail intact: {verdict.entries} entries")
        return
    click.echo(f"trygg: audit trail BROKEN at entry {verdict.bad_seq}: {verdict.reason}", err=True)
    ctx.exit(EXIT_AUDIT_BROKEN)


# -- the resident's look-in grant -------------------------------------------------------------
@click.group("grant")
def grant_group() -> None:
    """The resident's look-in grant: show it, or change it as the resident (or their representative) agreed."""


def _grant(ctx, config_path):
    from .grant import Grant

    cfg, db, audit = _open(ctx, config_path)
    return Grant(cfg.lookin, cfg.home.timezone, SystemClock(), db, cfg.roles), db, audit


@grant_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@config_option
@click.pass_context
@friendly_errors
def grant_show(ctx, as_json: bool, config_path) -> None:
    """The grant in force and tonight's counts."""
    grant, db, _ = _grant(ctx, config_path)
    with db:
        info = grant.status()
    if as_json:
        click.echo(json.dumps(info, ensure_ascii=False))
        return
    hours = ", ".join(info["times"]) + f" ± {info['tolerance_s'] / 60:g} min" if info["times"] else \
        ", ".join(f"{w['start']}-{w['end']}" for w in info["windows"]) or "none"
    click.echo(f"camera {info['camera']}  privacy {info['privacy']}  roles {', '.join(info['roles']) or 'nobody'}")
    click.echo(f"hours {hours}  at most {info['max_per_night']} a night")
    left = "unknown (clock not synchronized)" if info["left"] is None else info["left"]
    click.echo(f"tonight: {info['used']} used, {left} left, {info['refused']} refused")


@grant_group.command("set")
@grant_change_options
@click.option("--by", required=True, help="Who records the change (the technician's name, for the audit).")
@config_option
@click.pass_context
@friendly_errors
def grant_set(ctx, by: str, config_path, **given) -> None:
    """Change the grant on the device (audited; the running daemon tells the center within a second)."""
    grant, db, audit = _grant(ctx, config_path)
    with db:
        new = grant.change({k: v for k, v in given.items() if v is not None}, f"technician {by}", audit)
    click.echo(f"grant changed: {json.dumps(grant.plan(new), ensure_ascii=False)}")


# -- center keys ------------------------------------------------------------------------------
@click.group("center-key")
def center_key() -> None:
    """The care center's public keys on this device (for a key rotation)."""


@center_key.command("stage")
@click.argument("public_key", type=click.Path(dir_okay=False, path_type=Path))
@config_option
@click.pass_context
@friendly_errors
def center_key_stage(ctx, public_key: Path, config_path) -> None:
    """Install the center's NEXT public key; it becomes active on a signed switch_center_key command."""
    cfg, db, audit = _open(ctx, config_path)
    public = load_public(public_key)
    if center_kid(public) == center_kid(load_public(cfg.keys.center)):
        raise TryggError(f"{public_key} is the current center key, not a new one")
    tmp = cfg.keys.center_next.with_name(cfg.keys.center_next.name + ".tmp")
    shutil.copyfile(public_key, tmp)
    tmp.replace(cfg.keys.center_next)
    with db:
        audit.append("center_key_staged", {"kid": center_kid(public), "path": str(cfg.keys.center_next)})
    click.echo(f"staged the next center key {center_kid(public)} at {cfg.keys.center_next}")

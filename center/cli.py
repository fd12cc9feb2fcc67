"""`trygg center ...`: the night-staff side of the command line.

Commands to a home (unlock, lock, ping, status, switch-key) exit 0 only when the device
confirmed the action with a signed result; 4 when it refused, 5 when it failed, 6 when no
answer came (home offline or unknown, broker unreachable), 1 for bad input.
"""

import json
import signal
import sys
import threading
from pathlib import Path

import click

from . import config as cfgmod
from . import provision
from base.cliutil import config_option, friendly_errors, grant_change_options, resolve_config
from base.clock import SystemClock
from base.errors import TryggError
from base.keys import load_private, load_public

from . import keyring

EXIT_REFUSED, EXIT_FAILED, EXIT_NO_ANSWER = 4, 5, 6
KEM_CHOICE = click.Choice(["x25519", "mlkem768-x25519"])


def _center_config(ctx, config_path) -> cfgmod.CenterConfig:
    return cfgmod.load(resolve_config(ctx, config_path, cfgmod.DEFAULT_CENTER_CONFIG))


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
@click.option("--store", "store_url", default="",
              help="postgresql://USER@HOST/DB for several receivers as one (default: an SQLite file here).")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the SQLite store lives (default: --dir; packaged: /var/lib/trygg-center).")
@click.option("--force", is_flag=True, help="Replace existing config and keys.")
@friendly_errors
def center_init(directory, broker, ca, cert, key, kem, name, store_url, state_dir, force) -> None:
    """Write a receiver config, the center's keys, and center.pub for devices."""
    out = provision.init_center(broker, ca, cert, key, directory, force=force, kem=kem, name=name,
                                store_url=store_url, state_dir=state_dir)
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
    cfg = _center_config(ctx, config_path)
    click.echo(f"enrolled {provision.add_home(cfg.center.homes_dir, public_key, force)}")


@center.command("add-homes")
@click.argument("folder", required=False, type=click.Path(path_type=Path))
@click.option("--list", "list_file", type=click.Path(dir_okay=False, path_type=Path),
              help="A text file naming one device.pub a line (# comments; relative to the list file).")
@config_option
@click.option("--force", is_flag=True, help="Replace homes enrolled with a different key.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list: home, file, result per key file.")
@click.pass_context
@friendly_errors
def add_homes(ctx, folder: Path | None, list_file: Path | None, config_path, force: bool, as_json: bool) -> None:
    """Enroll many homes: every .pub in FOLDER, or the files in --list. All are checked first;
    if any is bad, none is enrolled. Homes already enrolled with the same key are left unchanged."""
    if (folder is None) == (list_file is None):
        raise TryggError("give a FOLDER of .pub files or --list FILE (one of them)")
    cfg = _center_config(ctx, config_path)
    files = provision.key_files_in(folder) if folder is not None else provision.key_files_listed(list_file)
    try:
        done = provision.add_homes(cfg.center.homes_dir, files, force)
    except provision.BatchRefused as exc:
        for problem in exc.problems:
            click.echo(f"trygg: {problem}", err=True)
        raise
    if as_json:
        click.echo(json.dumps([e.to_json() for e in done], ensure_ascii=False))
        return
    counts = {r: sum(e.result == r for e in done) for r in ("enrolled", "replaced", "unchanged")}
    for e in done:
        if e.result == "replaced":
            click.echo(f"replaced the key of {e.home} ({e.file})")
    click.echo(", ".join(f"{n} {r}" for r, n in counts.items()) + f" ({len(done)} homes in {cfg.center.homes_dir})")


@center.command("run")
@config_option
@click.pass_context
@friendly_errors
def run(ctx, config_path) -> None:
    """The receiving service: receive, verify, record, acknowledge; open and escalate cases."""
    from base import logs

    from .service import Service

    cfg = _center_config(ctx, config_path)
    logs.setup(cfg.log.level)
    service = Service(cfg)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: service.stop())
    failed = service.run()
    if failed:
        raise TryggError(f"receiver stopped: {failed}")


@center.command("watch")
@config_option
@click.option("--json", "as_json", is_flag=True, help="JSON lines: events, cases, rounds alerts on stdout; "
                                                        "presence and receivers on stderr.")
@click.option("--all", "show_all", is_flag=True, help="Also telemetry and audit entries.")
@click.option("--bell", is_flag=True, help="Ring the terminal bell on alarms and escalations.")
@click.option("--lang", type=click.Choice(["sv", "en"]), help="Language of the lines (default Swedish).")
@click.pass_context
@friendly_errors
def watch(ctx, config_path, as_json: bool, show_all: bool, bell: bool, lang) -> None:
    """Show open cases and homes needing attention now, then every change as it is recorded."""
    from base import logs

    from .printer import Printer
    from .view import View
    from .wording import Words, language

    cfg = _center_config(ctx, config_path)
    logs.setup("warning")
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    View(cfg, Printer(as_json, Words(language(lang)), bell=bell, on_call=cfg.cases.on_call), SystemClock(),
         show_all).run(stop)


# -- staff keys and center key rotation --------------------------------------------------------
@center.command("staff-key")
@click.argument("name")
@click.option("--kem", type=KEM_CHOICE, default="x25519", show_default=True,
              help="HPKE KEM of the staff key (look-in pictures are sealed to it).")
@click.option("--force", is_flag=True, help="Replace this person's existing key.")
@config_option
@click.pass_context
@friendly_errors
def staff_key(ctx, name: str, kem: str, force: bool, config_path) -> None:
    """Create a staff member's key pair; prints the public key file to enroll on devices."""
    click.echo(keyring.new_staff_key(_center_config(ctx, config_path), name, kem, force))


@center.command("new-key")
@click.option("--kem", type=KEM_CHOICE, default="x25519", show_default=True)
@config_option
@click.pass_context
@friendly_errors
def new_key(ctx, kem: str, config_path) -> None:
    """Start a center key rotation: create the next key; prints its .pub for technicians."""
    click.echo(keyring.new_next_key(_center_config(ctx, config_path), kem))


@center.command("promote-key")
@config_option
@click.pass_context
@friendly_errors
def promote_key(ctx, config_path) -> None:
    """Finish a rotation (after every home switched): the next key becomes the center key."""
    click.echo(f"the center key is now {keyring.promote_next_key(_center_config(ctx, config_path))}; "
               "restart the receiver")


# -- commands to a home ------------------------------------------------------------------------
def _command_options(fn):
    for option in reversed([
        click.argument("home"),
        click.option("--as", "as_staff", required=True, help="The staff member sending it (their key signs it)."),
        click.option("--timeout", default=30.0, show_default=True, type=click.FloatRange(0.1, 3600),
                     help="Seconds to wait for the home's answer."),
        click.option("--json", "as_json", is_flag=True, help="Print the device's result as JSON."),
        config_option,
        click.pass_context,
        friendly_errors,
    ]):
        fn = option(fn)
    return fn


def _commander(ctx, config_path, home: str, as_staff: str):
    """A command session to one enrolled home as one staff member (their key signs)."""
    from .commander import Commander

    cfg = _center_config(ctx, config_path)
    home_key = keyring.enrolled_home(cfg, home)
    staff = keyring.staff_identity(cfg, as_staff)
    return Commander(cfg, keyring.opening_keys(cfg), staff, load_public(home_key), SystemClock())


def _no_answer(exc) -> None:
    click.echo(f"trygg: {exc}", err=True)
    sys.exit(EXIT_NO_ANSWER)


def _exit_for(outcome: str) -> None:
    sys.exit({"done": 0, "refused": EXIT_REFUSED, "failed": EXIT_FAILED}.get(outcome, EXIT_FAILED))


def _send(ctx, config_path, home: str, as_staff: str, action: str, args: dict, timeout: float, as_json: bool) -> None:
    from .commander import NoAnswer

    try:
        with _commander(ctx, config_path, home, as_staff) as commander:
            answer = commander.send(action, args, timeout=timeout)
    except NoAnswer as exc:
        _no_answer(exc)
    result = answer.result
    if as_json:
        click.echo(json.dumps(answer.to_json(), ensure_ascii=False))
    else:
        lock = result.get("lock") or args.get("lock")  # a failed unlock has no lock state to report
        target = f" {lock}" if lock else ""
        line = f"{action}{target} at {home} by {as_staff}: {answer.outcome.upper()}"
        line += f" - {result.get('reason')}" if result.get("reason") else ""
        click.echo(line + f"  ({(answer.answered_at - answer.sent_at) * 1000:.0f} ms)")
        if action == "status" and "status" in result:
            click.echo(json.dumps(result["status"], indent=1))
    _exit_for(answer.outcome)


@center.command("unlock")
@click.option("--lock", default="front-door", show_default=True, help="Which lock of the home.")
@_command_options
def unlock(ctx, home, as_staff, timeout, as_json, config_path, lock) -> None:
    """Unlock a home's door; exits 0 only when the device confirms it."""
    _send(ctx, config_path, home, as_staff, "unlock", {"lock": lock}, timeout, as_json)


@center.command("lock")
@click.option("--lock", default="front-door", show_default=True, help="Which lock of the home.")
@_command_options
def lock(ctx, home, as_staff, timeout, as_json, config_path, lock) -> None:
    """Lock a home's door; exits 0 only when the device confirms it."""
    _send(ctx, config_path, home, as_staff, "lock", {"lock": lock}, timeout, as_json)


@center.command("ping")
@_command_options
def ping(ctx, home, as_staff, timeout, as_json, config_path) -> None:
    """Check that a home answers signed commands."""
    _send(ctx, config_path, home, as_staff, "ping", {}, timeout, as_json)


@center.command("status")
@_command_options
def home_status(ctx, home, as_staff, timeout, as_json, config_path) -> None:
    """Ask a home for its status (link, outbox, locks, clock)."""
    _send(ctx, config_path, home, as_staff, "status", {}, timeout, as_json)


@center.command("lookin")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the picture (JPEG, 0600); a burst writes FILE, FILE-2.jpg, ...")
@_command_options
def lookin(ctx, home, as_staff, timeout, as_json, config_path, out: Path) -> None:
    """Look in on a resident as the grant allows; exits 4 with the device's reason when refused."""
    from . import lookin as looking
    from .commander import NoAnswer

    try:
        with _commander(ctx, config_path, home, as_staff) as commander:
            answer, picture = commander.look_in(timeout=timeout)
    except NoAnswer as exc:
        _no_answer(exc)
    written = looking.write_pictures(picture, out) if picture else []
    result = answer.result
    if as_json:
        click.echo(json.dumps({**answer.to_json(), "files": [str(p) for p in written]}, ensure_ascii=False))
    elif answer.outcome == "done":
        click.echo(f"look-in at {home} by {as_staff}: {len(written)} picture(s), {result.get('privacy')}, "
                   f"{result.get('left')} look-in(s) left tonight  ({(answer.answered_at - answer.sent_at) * 1000:.0f} ms)")
        for path in written:
            click.echo(f"wrote {path}")
    if answer.outcome != "done":
        click.echo(f"trygg: look-in at {home} {answer.outcome.upper()}: {result.get('reason') or 'no reason given'}",
                   err=True)
    _exit_for(answer.outcome)


@center.command("grant")
@grant_change_options
@_command_options
def grant(ctx, home, as_staff, timeout, as_json, config_path, **given) -> None:
    """Change a resident's look-in grant (signed; the device checks the role and audits it)."""
    args = {k: v for k, v in given.items() if v is not None}
    if not args:
        raise TryggError("nothing to change: give --privacy, --max-per-night, --roles, --windows, --times or --tolerance")
    _send(ctx, config_path, home, as_staff, "lookin_grant", args, timeout, as_json)


@center.command("switch-key")
@_command_options
def switch_key(ctx, home, as_staff, timeout, as_json, config_path) -> None:
    """Tell a home to seal to the center's next key from now on (it must be staged there)."""
    from base.keys import center_kid

    cfg = _center_config(ctx, config_path)
    if not cfg.center.next_key.exists():
        raise TryggError(f"no next center key at {cfg.center.next_key} (trygg center new-key)")
    kid = center_kid(load_private(cfg.center.next_key).public())
    _send(ctx, config_path, home, as_staff, "switch_center_key", {"kid": kid}, timeout, as_json)


@center.command("help-coming")
@click.option("--case", default=None, help="The alarm case accepted (its id), for the home's record.")
@click.option("--minutes", default=None, type=click.IntRange(1, 240),
              help="How long the alarm button's light stays steady (default: the home's [help_coming] minutes).")
@_command_options
def help_coming(ctx, home, as_staff, timeout, as_json, config_path, case, minutes) -> None:
    """Tell the resident help is coming (the button's light, a spoken message); exits 4 when the home cannot."""
    args = {k: v for k, v in (("case", case), ("minutes", minutes)) if v is not None}
    _send(ctx, config_path, home, as_staff, "help_coming", args, timeout, as_json)


# -- look-in rounds ----------------------------------------------------------------------------
def _rounds_desk(cfg: cfgmod.CenterConfig):
    from .atrest import center_keys
    from .roundsdesk import RoundsDesk
    from .store import EventStore

    return RoundsDesk(EventStore(cfg.store_url), center_keys(cfg), cfg.rounds.retry_after_s)


@center.command("rounds")
@config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object with every slot.")
@click.pass_context
@friendly_errors
def rounds(ctx, config_path, as_json: bool) -> None:
    """Tonight's agreed look-ins in every home: what is due, what next, where a person must go."""
    from protocol.messages import iso

    from .console import slot_json, slot_line

    cfg = _center_config(ctx, config_path)
    now = SystemClock().now()
    with _rounds_desk(cfg) as desk:
        slots = desk.tonight(now)
    if as_json:
        click.echo(json.dumps({"time": iso(now), "slots": [slot_json(s) for s in slots]}, ensure_ascii=False))
        return
    if not slots:
        click.echo("no look-in rounds tonight (no home has sent agreed look-in times)")
    for slot in slots:
        click.echo(slot_line(slot))


def _record_verdict(ctx, config_path, home: str, as_staff: str, slot: str | None, verdict: str) -> None:
    from .console import verdict_line

    cfg = _center_config(ctx, config_path)
    keyring.enrolled_home(cfg, home)
    keyring.staff_identity(cfg, as_staff)  # a known staff member, or a clear error: the record names who
    with _rounds_desk(cfg) as desk:
        click.echo(verdict_line(desk.record(home, verdict, as_staff, SystemClock().now(), slot)))


def _verdict_options(fn):
    for option in reversed([
        click.argument("home"),
        click.option("--as", "as_staff", required=True, help="The staff member who looked (a staff key name)."),
        click.option("--slot", help="The agreed look-in time HH:MM (default: the one due now)."),
        config_option,
        click.pass_context,
        friendly_errors,
    ]):
        fn = option(fn)
    return fn


@center.command("seen")
@_verdict_options
def seen(ctx, home, as_staff, slot, config_path) -> None:
    """Record that the resident was seen at the look-in due now (closes it)."""
    _record_verdict(ctx, config_path, home, as_staff, slot, "seen")


@center.command("not-seen")
@_verdict_options
def not_seen(ctx, home, as_staff, slot, config_path) -> None:
    """Record that the resident was not seen: look again later; not seen again means a visit."""
    _record_verdict(ctx, config_path, home, as_staff, slot, "not_seen")


@center.command("doctor")
@config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object: status and every check.")
@click.pass_context
def doctor(ctx, config_path, as_json: bool) -> None:
    """Check everything at once: config, store, broker, keys, homes, certificate, receivers, web.
    Exit 0 all passed, 1 warnings, 2 something failed."""
    from base.doctor import exit_code, render_json, render_text

    from .doctor import diagnose

    verdicts = diagnose(resolve_config(ctx, config_path, cfgmod.DEFAULT_CENTER_CONFIG))
    click.echo(render_json(verdicts) if as_json else render_text(verdicts))
    sys.exit(exit_code(verdicts))


from .casecli import register as _register_case_commands  # noqa: E402 (after the group exists)

_register_case_commands(center)

from .webcli import register as _register_web_commands  # noqa: E402

_register_web_commands(center, _center_config)

from .reportcli import register as _register_report_commands  # noqa: E402

_register_report_commands(center)

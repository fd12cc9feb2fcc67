"""`trygg center web` (the night staff's console), `trygg center add-staff` (enroll the key a
staff member's browser made), `trygg center passkey-code|passkeys|sign-ins` (their passkeys and
the sign-in log) and `trygg center resident` (the resident card staff read there)."""

from contextlib import contextmanager
from pathlib import Path

import click

from base.cliutil import config_option, friendly_errors
from base.errors import TryggError

from . import keyring


def _loopback(host: str) -> bool:
    return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")


def _swedish(at: float | None) -> str:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return "never" if at is None else datetime.fromtimestamp(at, ZoneInfo("Europe/Stockholm")).strftime("%Y-%m-%d %H:%M")


@contextmanager
def _access(cfg):
    """The passkeys and the sign-in log, on the center's store."""
    import time

    from .atrest import Sealer, center_keys
    from .store import EventStore
    from .web.accesslog import ACCESS_CONTEXT, AccessLog
    from .web.passkeys import PASSKEY_CONTEXT, PasskeyStore

    store = EventStore(cfg.store_url)
    keys = center_keys(cfg)
    try:
        yield (PasskeyStore(store.db, Sealer(keys, PASSKEY_CONTEXT)),
               AccessLog(store.db, Sealer(keys, ACCESS_CONTEXT), time.time))
    finally:
        store.close()


def register(center: click.Group, load_config) -> None:
    @center.command("add-staff")
    @click.argument("public_key", type=click.Path(dir_okay=False, path_type=Path))
    @click.option("--force", is_flag=True, help="Replace this person's enrolled key (a new browser).")
    @config_option
    @click.pass_context
    @friendly_errors
    def add_staff(ctx, public_key: Path, force: bool, config_path) -> None:
        """Enroll a staff member's public key, as their browser showed it (the private key stays there)."""
        from .provision import add_staff as enroll

        click.echo(f"enrolled {enroll(load_config(ctx, config_path).center.staff_dir, public_key, force)}")

    @center.command("passkey-code")
    @click.argument("name")
    @click.option("--valid-h", type=click.FloatRange(0.1, 72), default=24.0, show_default=True,
                  help="Hours the code is valid.")
    @click.option("--json", "as_json", is_flag=True)
    @config_option
    @click.pass_context
    @friendly_errors
    def passkey_code(ctx, name: str, valid_h: float, as_json: bool, config_path) -> None:
        """A one-time code with which NAME registers a passkey in the console (shown once, kept hashed)."""
        import json
        import time

        cfg = load_config(ctx, config_path)
        if keyring.staff_public(cfg, name) is None:
            raise TryggError(f"{name} is not enrolled at the center: `trygg center add-staff {name}.pub` first")
        with _access(cfg) as (passkeys, log):
            code, expires = passkeys.issue_code(name, time.time(), valid_h)
            log.append("code_issued", {"name": name, "expires": expires})
        if as_json:
            click.echo(json.dumps({"name": name, "code": code, "expires": expires}))
            return
        click.echo(f"one-time passkey code for {name}: {code}")
        click.echo(f"valid once, until {_swedish(expires)} (Swedish time). Give it to {name} yourself (in person or "
                   "by phone, not by e-mail); they type it in the console, on their own device, to register a passkey.")

    @center.command("passkeys")
    @click.argument("name")
    @click.option("--remove", "remove", metavar="ID", help="Remove the passkey whose id starts with ID ('all': all "
                  "of NAME's). A session signed in with it ends at once.")
    @click.option("--json", "as_json", is_flag=True)
    @config_option
    @click.pass_context
    @friendly_errors
    def passkeys_cmd(ctx, name: str, remove: str | None, as_json: bool, config_path) -> None:
        """NAME's passkeys for the console: list them, or remove one."""
        import json

        cfg = load_config(ctx, config_path)
        with _access(cfg) as (passkeys, log):
            if remove:
                gone = passkeys.remove(name, remove)
                for key_id in gone:
                    log.append("passkey_removed", {"name": name, "passkey": key_id, "by": "cli"})
                click.echo(f"removed {len(gone)} passkey(s) of {name}")
                return
            keys = passkeys.of(name)
        if as_json:
            click.echo(json.dumps([k.to_json() for k in keys]))
            return
        if not keys:
            click.echo(f"{name} has no passkey (`trygg center passkey-code {name}` gives a code to register one)")
        for k in keys:
            click.echo(f"{k.id[:16]}  for {k.rp_id}  registered {_swedish(k.created)}  last used {_swedish(k.last_used)}"
                       f"  counter {k.sign_count}")

    @center.command("sign-ins")
    @click.option("--since-h", type=float, default=24.0, show_default=True, help="Hours back to show.")
    @click.option("--json", "as_json", is_flag=True)
    @config_option
    @click.pass_context
    @friendly_errors
    def sign_ins(ctx, since_h: float, as_json: bool, config_path) -> None:
        """The console's sign-in log (sign-ins, refusals and why, passkeys added and removed); checks its chain."""
        import json
        import time

        from .web.accesslog import verify

        cfg = load_config(ctx, config_path)
        with _access(cfg) as (_passkeys, log):
            entries = log.entries(time.time() - since_h * 3600)
            check = verify(log.db)
        if as_json:
            click.echo(json.dumps({"entries": entries, "chain": check.__dict__}, ensure_ascii=False))
        else:
            for e in entries:
                who = e.get("name") or "?"
                why = f" [{e['code']}] {e.get('reason', '')}" if e["action"] == "refused" else ""
                extra = f" {e['suppressed']} more refusals not recorded" if e["action"] == "refusals_suppressed" else ""
                click.echo(f"{e['at']}  {e['action']:<20} {who}{why}{extra}  {e.get('client', '')}".rstrip())
            click.echo(f"sign-in log: {check.entries} entries, " + ("chain intact" if check.ok else check.problem))
        if not check.ok:
            raise SystemExit(2)

    @center.group("resident")
    def resident() -> None:
        """The resident card of a home (name, entry, what to do per alarm, contacts): sealed at rest."""

    @contextmanager
    def _residents(cfg):
        from .atrest import Sealer, center_keys
        from .residents import RESIDENT_CONTEXT, Residents
        from .store import EventStore

        store = EventStore(cfg.store_url)
        try:
            yield Residents(store.db, Sealer(center_keys(cfg), RESIDENT_CONTEXT))
        finally:
            store.close()

    @resident.command("set")
    @click.argument("home")
    @click.option("--file", "card_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
                  help="The card as JSON: name, address, entry, care {kind: note}, contacts "
                       "[{name, relation, phone}], notes.")
    @config_option
    @click.pass_context
    @friendly_errors
    def resident_set(ctx, home: str, card_file: Path, config_path) -> None:
        """Enter or replace a home's resident card (an administrator's job)."""
        import time

        from .residents import read_card

        cfg = load_config(ctx, config_path)
        keyring.enrolled_home(cfg, home)
        card = read_card(card_file)
        with _residents(cfg) as residents:
            residents.set(home, card, time.time())
        click.echo(f"resident card of {home} saved (sealed): {card.name}")

    @resident.command("show")
    @click.argument("home")
    @click.option("--json", "as_json", is_flag=True)
    @config_option
    @click.pass_context
    @friendly_errors
    def resident_show(ctx, home: str, as_json: bool, config_path) -> None:
        """A home's resident card, as staff see it."""
        import json

        cfg = load_config(ctx, config_path)
        keyring.enrolled_home(cfg, home)
        with _residents(cfg) as residents:
            card = residents.get(home)
        if card is None:
            raise TryggError(f"{home} has no resident card (trygg center resident set {home} --file CARD.json)")
        if as_json:
            click.echo(json.dumps(card, ensure_ascii=False))
            return
        click.echo(f"{card['name']}, {card['address']}\n{card['entry']}")
        for kind, note in card["care"].items():
            click.echo(f"  {kind}: {note}")
        for contact in card["contacts"]:
            click.echo(f"  {contact['name']} ({contact['relation']}) {contact['phone']}")

    @center.command("web")
    @click.option("--listen", help="HOST:PORT to serve on (default [web] listen). Plain HTTP only on loopback.")
    @click.option("--fingerprint", is_flag=True,
                  help="Print the page's fingerprint from the installed files and exit (compare it with the key screen).")
    @config_option
    @click.pass_context
    @friendly_errors
    def web(ctx, listen: str | None, fingerprint: bool, config_path) -> None:
        """The night staff's web console: alarms and cases, homes, live, over HTTPS."""
        import time

        from .web import pagecode

        try:
            code = pagecode.build()
        except FileNotFoundError as exc:
            raise TryggError(f"the console's page is not built ({exc.filename} is missing): run make") from None
        if fingerprint:
            click.echo(code.fingerprint_words())
            return

        import uvicorn

        from base import logs

        from .atrest import Sealer, center_keys
        from .residents import RESIDENT_CONTEXT, Residents
        from .roundsdesk import RoundsDesk
        from .service import case_desk
        from .store import EventStore
        from .web.accesslog import ACCESS_CONTEXT, AccessLog
        from .web.app import Console, make_app
        from .web.passkeys import PASSKEY_CONTEXT, PasskeyStore
        from .web.session import Sessions, load_secret
        from .web.signin import SignInDesk

        cfg = load_config(ctx, config_path)
        logs.setup(cfg.log.level)
        host, _, port = (listen or cfg.web.listen).rpartition(":")
        host = host.strip("[]")
        if not port.isdigit() or not 0 < int(port) < 65536 or not host:
            raise TryggError(f"--listen {listen!r}: expected HOST:PORT")
        tls = cfg.web.cert is not None and cfg.web.key is not None
        if not tls and not _loopback(host):
            raise TryggError(f"refusing plain HTTP on {host}: set [web] cert and key (HTTPS), or listen on 127.0.0.1")
        store = EventStore(cfg.store_url)
        sessions = Sessions(load_secret(cfg.web.secret), cfg.web.session_h * 3600)
        keys = center_keys(cfg)
        signin = SignInDesk(sessions, PasskeyStore(store.db, Sealer(keys, PASSKEY_CONTEXT)),
                            AccessLog(store.db, Sealer(keys, ACCESS_CONTEXT), time.time),
                            lambda name: keyring.staff_public(cfg, name), time.time)
        app = make_app(Console(cfg, case_desk(cfg, store, keys), signin, secure=tls,
                               rounds=lambda: RoundsDesk(store, keys, cfg.rounds.retry_after_s),
                               residents=Residents(store.db, Sealer(keys, RESIDENT_CONTEXT)), store=store))
        shown = cfg.web.host or ("localhost" if not tls else host)  # a passkey's RP id is a host name, never an address
        click.echo(f"console on {'https' if tls else 'http'}://{shown}:{port}/ (page fingerprint "
                   f"{code.fingerprint_words()})", err=True)
        uvicorn.run(app, host=host, port=int(port), log_level="warning", access_log=False,
                    ssl_certfile=str(cfg.web.cert) if tls else None, ssl_keyfile=str(cfg.web.key) if tls else None)

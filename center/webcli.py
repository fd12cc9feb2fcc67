"""`trygg center web` (the night staff's console), `trygg center add-staff` (enroll the key a
staff member's browser made) and `trygg center resident` (the resident card staff read there)."""

from contextlib import contextmanager
from pathlib import Path

import click

from base.cliutil import config_option, friendly_errors
from base.errors import TryggError

from . import keyring


def _loopback(host: str) -> bool:
    return host in ("127.0.0.1", "::1", "localhost") or host.startswith("127.")


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
    @config_option
    @click.pass_context
    @friendly_errors
    def web(ctx, listen: str | None, config_path) -> None:
        """The night staff's web console: alarms and cases, homes, live, over HTTPS."""
        import uvicorn

        from base import logs

        from .atrest import Sealer, center_keys
        from .residents import RESIDENT_CONTEXT, Residents
        from .roundsdesk import RoundsDesk
        from .service import case_desk
        from .store import EventStore
        from .web.app import Console, make_app
        from .web.session import Sessions, load_secret

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
        app = make_app(Console(cfg, case_desk(cfg, store, keys), sessions, secure=tls,
                               rounds=lambda: RoundsDesk(store, keys, cfg.rounds.retry_after_s),
                               residents=Residents(store.db, Sealer(keys, RESIDENT_CONTEXT)), store=store))
        click.echo(f"console on {'https' if tls else 'http'}://{host}:{port}/", err=True)
        uvicorn.run(app, host=host, port=int(port), log_level="warning", access_log=False,
                    ssl_certfile=str(cfg.web.cert) if tls else None, ssl_keyfile=str(cfg.web.key) if tls else None)

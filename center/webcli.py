"""`trygg center web` (the night staff's console) and `trygg center add-staff` (enroll the key a
staff member's browser made)."""

from pathlib import Path

import click

from base.cliutil import config_option, friendly_errors
from base.errors import TryggError


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

    @center.command("web")
    @click.option("--listen", help="HOST:PORT to serve on (default [web] listen). Plain HTTP only on loopback.")
    @config_option
    @click.pass_context
    @friendly_errors
    def web(ctx, listen: str | None, config_path) -> None:
        """The night staff's web console: alarms and cases, homes, live, over HTTPS."""
        import uvicorn

        from base import logs

        from .atrest import center_keys
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
                               rounds=lambda: RoundsDesk(store, keys, cfg.rounds.retry_after_s)))
        click.echo(f"console on {'https' if tls else 'http'}://{host}:{port}/", err=True)
        uvicorn.run(app, host=host, port=int(port), log_level="warning", access_log=False,
                    ssl_certfile=str(cfg.web.cert) if tls else None, ssl_keyfile=str(cfg.web.key) if tls else None)

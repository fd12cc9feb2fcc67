"""The night staff's web console: an ASGI app (Starlette) on the center's store.

It reads cases and homes from the store the receiving service writes, follows the store's
feed for live changes (Server-Sent Events), and applies case actions that the staff member's
browser signed with their own key (the same signed statements as `trygg center accept ...`):
the server checks and records them, it cannot make one. Several instances may run against one
PostgreSQL store. Everything but the page, its files, its words, sign-in and registering a
passkey needs a session; sign-in needs the browser's enrolled key and the person's passkey
(signin.py).
"""

import functools
import json
import logging
import time
from datetime import datetime, timezone
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from base.errors import TryggError

from .. import keyring
from ..cases import CaseDesk, CaseError
from ..staffsign import SignatureRefused, SignedAction
from . import pagecode
from .catalog import catalog, language_of
from .headers import SecurityHeaders
from .livefeed import LiveFeed
from .locks import lock_names, locks_view
from .session import SignInRefused
from .signin import RelyingParty, SignInDesk

log = logging.getLogger(__name__)
STATIC = pagecode.STATIC
COOKIE = "trygg_session"
FEED_POLL_S = 0.05  # the live feed's look at the store (one for all pages): an alarm is sent within ~50 ms
MAX_BODY = 16_384
MEMBER_RECHECK_S = 5.0  # an open live stream re-checks its member at least this often


class Console:
    """What the routes need: the config, the store and the desks on it (cases, rounds, resident
    cards), and sign-in (passkeys, sessions, the sign-in log)."""

    def __init__(self, cfg, desk: CaseDesk, signin: SignInDesk, secure: bool, clock=time.time,
                 rounds=None, residents=None, store=None, static: Path = STATIC, connect=None) -> None:
        self.cfg = cfg
        self.static = static  # the page's files (pagecode.py pins them)
        self.desk = desk
        self.residents = residents  # center/residents.py: the resident cards
        self.store = store  # the events, opened for a home's screen
        self.rounds = rounds  # () -> a RoundsDesk on the store, fresh (it reads the homes' plans when made)
        self.signin = signin
        self.secure = secure
        self.clock = clock
        self.connect = connect  # (cfg, home) -> a Commander for commands (commands.connect_home unless a test's)

    @functools.cached_property
    def commands(self):
        """Commands to homes: prepared here, signed in the browser, unlock and look-in with the passkey again."""
        from .commands import HomeCommands, connect_home

        return HomeCommands(self.cfg, self.signin, self.connect or connect_home)

    def staff_key(self, name: str):
        return keyring.staff_public(self.cfg, name)

    def home_events(self, home: str, since: float):
        return self.store.events_of(home, since) if self.store is not None else []

    @functools.cached_property
    def opener(self):
        """Opens a home's events for its screen, with the center's keys (made on first use)."""
        from ..homes import HomeRegistry
        from ..opening import Opener
        from base.clock import SystemClock

        return Opener(HomeRegistry(self.cfg.center.homes_dir), keyring.opening_keys(self.cfg),
                      lambda: keyring.opening_keys(self.cfg), SystemClock())

    def member(self, request: Request) -> str:
        return self.signin.who(request.cookies.get(COOKIE))


def _relying_party(request: Request) -> RelyingParty:
    """The console as this browser reached it: its host is the passkeys' RP id, and the origin the
    browser must have signed for. With [web] host set, no other host gets this far (make_app)."""
    return RelyingParty(request.url.hostname or "", f"{request.url.scheme}://{request.url.netloc}")


def _client(request: Request) -> str:
    return request.client.host if request.client else "?"


def _iso(at: float) -> str:
    from protocol.messages import iso

    return iso(datetime.fromtimestamp(at, timezone.utc))


def _error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _json_body(request: Request) -> dict:
    """A small JSON object from a same-origin script (the header a form or another site cannot set)."""
    if request.headers.get("x-trygg") != "1" or not request.headers.get("content-type", "").startswith(
            "application/json"):
        raise ValueError("requests must come from the console's own page")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise ValueError("request too large")
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data


def make_app(console: Console) -> Starlette:
    def signed_in(handler):
        async def wrapped(request: Request):
            try:
                request.state.member = await run_in_threadpool(console.member, request)
            except SignInRefused as exc:
                return _error(str(exc), 401)
            return await handler(request)
        return wrapped

    code = pagecode.build(console.static)

    async def page(request: Request):
        return Response(code.html, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"})

    async def words(request: Request):
        return JSONResponse({**catalog(language_of(request.query_params.get("lang"))),
                             "outcomes": console.cfg.cases.outcomes})

    async def challenge(request: Request):
        return JSONResponse({"challenge": console.signin.sessions.challenge()})

    def _refusal(exc: Exception) -> JSONResponse:
        if isinstance(exc, SignInRefused):
            return JSONResponse({"error": str(exc), "code": exc.code}, status_code=401)
        return _error(str(exc))

    async def sign_in_options(request: Request):
        """Sign-in, first step: the browser's signed statement; the answer is the passkey request."""
        try:
            data = await _json_body(request)
            options = await run_in_threadpool(console.signin.sign_in_options, str(data.get("statement", "")),
                                              str(data.get("signature", "")), _relying_party(request), _client(request))
        except (ValueError, SignInRefused) as exc:
            log.warning("console sign-in refused from %s: %s", _client(request), exc)
            return _refusal(exc)
        return JSONResponse({"publicKey": options})

    async def sign_in(request: Request):
        """Sign-in: the same statement and the passkey's answer on its challenge; then the session."""
        try:
            data = await _json_body(request)
            name, token = await run_in_threadpool(console.signin.sign_in, str(data.get("statement", "")),
                                                  str(data.get("signature", "")), data.get("passkey"),
                                                  _relying_party(request), _client(request))
        except (ValueError, SignInRefused) as exc:
            log.warning("console sign-in refused from %s: %s", _client(request), exc)
            return _refusal(exc)
        log.warning("console sign-in: %s from %s", name, _client(request))  # and in the sign-in log
        response = JSONResponse({"name": name})
        response.set_cookie(COOKIE, token, max_age=int(console.signin.sessions.lifetime_s), httponly=True,
                            secure=console.secure, samesite="strict", path="/")
        return response

    async def passkey_options(request: Request):
        """Registering a passkey, first step: the browser's statement and the one-time code."""
        try:
            data = await _json_body(request)
            options = await run_in_threadpool(console.signin.passkey_options, str(data.get("statement", "")),
                                              str(data.get("signature", "")), data.get("code"),
                                              _relying_party(request), _client(request))
        except (ValueError, SignInRefused) as exc:
            log.warning("console passkey registration refused from %s: %s", _client(request), exc)
            return _refusal(exc)
        return JSONResponse({"publicKey": options})

    async def register_passkey(request: Request):
        try:
            data = await _json_body(request)
            key = await run_in_threadpool(console.signin.register, str(data.get("statement", "")),
                                          str(data.get("signature", "")), data.get("code"), data.get("credential"),
                                          _relying_party(request), _client(request))
        except (ValueError, SignInRefused) as exc:
            log.warning("console passkey registration refused from %s: %s", _client(request), exc)
            return _refusal(exc)
        log.warning("console passkey registered: %s (%s) from %s", key.staff, key.id[:12], _client(request))
        return JSONResponse({"name": key.staff, "passkey": key.id})

    async def sign_out(request: Request):
        response = JSONResponse({})
        response.delete_cookie(COOKIE, path="/")
        return response

    @signed_in
    async def me(request: Request):
        return JSONResponse({"name": request.state.member})

    @signed_in
    async def cases(request: Request):
        return JSONResponse(await run_in_threadpool(_cases))

    def _cases() -> list[dict]:
        """The last day's cases, each with the locks of its home (the card's, or the front door)."""
        listing = console.desk.listing(False, console.clock() - 86400)
        cards = {home: console.residents.get(home) if console.residents else None for home in {c.home for c in listing}}
        return [{**c.to_json(), "locks": lock_names(cards[c.home])} for c in listing]

    @signed_in
    async def homes(request: Request):
        from ..fleet import fleet_rows

        return JSONResponse(await run_in_threadpool(fleet_rows, console.cfg, console.desk, console.clock()))

    @signed_in
    async def act(request: Request):
        try:
            data = await _json_body(request)
            signed = SignedAction.from_wire(str(data.get("statement", "")), str(data.get("signature", "")))
            statement = json.loads(signed.statement)
            if statement.get("by") != request.state.member:
                raise SignatureRefused("a case action must be signed by the member signed in here")
            if statement.get("case") != request.path_params["case_id"]:
                raise SignatureRefused("the signed case action is for another case")
            case = await run_in_threadpool(console.desk.act, signed, console.clock())
        except (ValueError, SignatureRefused, CaseError) as exc:
            return _error(str(exc))
        log.info("case %s: %s by %s (signed in the browser)", case.id, statement.get("action"), statement.get("by"))
        return JSONResponse(case.to_json())

    def _home(home: str) -> dict:
        from ..fleet import fleet_rows

        rows = [r for r in fleet_rows(console.cfg, console.desk, console.clock()) if r["home"] == home]
        if not rows:
            raise ValueError(f"{home!r} is not an enrolled home")
        since = console.clock() - 12 * 3600  # tonight: the last twelve hours
        events = []
        for received in console.home_events(home, since):
            try:
                event = console.opener.open_event(received.envelope, received.topic)
            except (ValueError, TryggError):
                continue  # reported by the service when it came; not shown twice
            if event.cls != "telemetry" and event.kind != "audit":  # what staff act on, as the terminal view
                events.append({"id": event.id, "class": event.cls, "kind": event.kind,
                               "received": _iso(received.received), "body": event.body})
        card = console.residents.get(home) if console.residents else None
        cases = [{**c.to_json(), "locks": lock_names(card)}
                 for c in console.desk.listing(False, console.clock() - 7 * 86400) if c.home == home]
        return {**rows[0], "card": card, "events": events[-100:], "cases": cases, "locks": locks_view(card, events)}

    @signed_in
    async def home_detail(request: Request):
        try:
            return JSONResponse(await run_in_threadpool(_home, request.path_params["home"]))
        except ValueError as exc:
            return _error(str(exc), 404)

    def _tonight() -> dict:
        from protocol.messages import iso

        from ..console import slot_json

        now = datetime.now(timezone.utc)
        return {"time": iso(now), "slots": [slot_json(s) for s in console.rounds().tonight(now)]}

    @signed_in
    async def report_morning(request: Request):
        from .reports import morning

        return await run_in_threadpool(morning, console, request.query_params)

    async def report_page(request: Request):
        """The morning report as a page of its own (web/reports.py); signed-in staff only."""
        from .reports import page, signed_out_page

        try:
            await run_in_threadpool(console.member, request)
        except SignInRefused:
            return signed_out_page()
        return await run_in_threadpool(page, console, request.query_params)

    @signed_in
    async def rounds(request: Request):
        if console.rounds is None:
            return JSONResponse({"slots": []})
        return JSONResponse(await run_in_threadpool(_tonight))

    @signed_in
    async def round_verdict(request: Request):
        try:
            data = await _json_body(request)
            verdict, slot = data.get("verdict"), data.get("slot")
            if verdict not in ("seen", "not_seen") or (slot is not None and not isinstance(slot, str)):
                raise ValueError("verdict must be seen or not_seen (and slot HH:MM, if given)")
            home = request.path_params["home"]
            keyring.enrolled_home(console.cfg, home)
            recorded = await run_in_threadpool(console.rounds().record, home, verdict, request.state.member,
                                               datetime.now(timezone.utc), slot)
        except (ValueError, TryggError) as exc:
            return _error(str(exc))
        from ..console import slot_json

        return JSONResponse(slot_json(recorded))

    def _caller(request: Request):
        from .commands import Caller

        return Caller(request.state.member, _relying_party(request), _client(request))

    def _step_up_refused(request: Request, exc: SignInRefused) -> JSONResponse:
        """The person was not confirmed again: nothing was sent (the reason in the page's words: its code)."""
        log.warning("command by %s from %s not sent: %s", request.state.member, _client(request), exc)
        return JSONResponse({"error": str(exc), "code": exc.code, "step_up": True}, status_code=403)

    @signed_in
    async def prepare_command(request: Request):
        from .commands import CommandRefused

        try:
            data = await _json_body(request)
            args = data.get("args") or {}
            if not isinstance(args, dict):
                raise ValueError("args must be an object")
            return JSONResponse(await run_in_threadpool(console.commands.prepare, _caller(request),
                                                        request.path_params["home"], str(data.get("action", "")), args))
        except SignInRefused as exc:
            return _step_up_refused(request, exc)
        except (ValueError, CommandRefused, TryggError) as exc:
            return _error(str(exc))

    @signed_in
    async def send_command(request: Request):
        from .commands import CommandRefused

        try:
            data = await _json_body(request)
            answer = await run_in_threadpool(console.commands.send, _caller(request), request.path_params["home"],
                                             str(data.get("body", "")), str(data.get("signature", "")),
                                             data.get("passkey"))
        except SignInRefused as exc:
            return _step_up_refused(request, exc)
        except (ValueError, CommandRefused) as exc:
            return _error(str(exc))
        log.info("%s to %s by %s (signed in the browser): %s", answer.get("action"), request.path_params["home"],
                 request.state.member, answer.get("outcome"))
        return JSONResponse(answer)

    hub = LiveFeed(console.desk.db, FEED_POLL_S)

    @signed_in
    async def live(request: Request):
        await hub.start()

        async def changes():
            seq = hub.seq
            yield "retry: 2000\n\n"
            while not await request.is_disconnected():
                rows, missed = await hub.after(seq, MEMBER_RECHECK_S)
                if missed:
                    yield 'data: {"type": "reload"}\n\n'
                for row in rows:
                    seq = row.seq
                    yield f"data: {json.dumps({'type': row.type, 'home': row.home, 'ref': row.ref})}\n\n"
                try:  # removed or expired: the stream ends too
                    await run_in_threadpool(console.member, request)
                except SignInRefused:
                    return
        return StreamingResponse(changes(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    routes = [
        Route("/", page),
        Route("/api/words", words),
        Route("/api/challenge", challenge),
        Route("/api/sign-in/options", sign_in_options, methods=["POST"]),
        Route("/api/sign-in", sign_in, methods=["POST"]),
        Route("/api/passkeys/options", passkey_options, methods=["POST"]),
        Route("/api/passkeys", register_passkey, methods=["POST"]),
        Route("/api/sign-out", sign_out, methods=["POST"]),
        Route("/api/me", me),
        Route("/api/cases", cases),
        Route("/api/homes", homes),
        Route("/api/cases/{case_id}/action", act, methods=["POST"]),
        Route("/api/homes/{home}", home_detail),
        Route("/api/rounds", rounds),
        Route("/api/report/morning", report_morning),
        Route("/report/morning", report_page),
        Route("/api/rounds/{home}/verdict", round_verdict, methods=["POST"]),
        Route("/api/homes/{home}/command/prepare", prepare_command, methods=["POST"]),
        Route("/api/homes/{home}/command/send", send_command, methods=["POST"]),
        Route("/api/live", live),
        Mount("/static", StaticFiles(directory=console.static), name="static"),
    ]
    middleware = [Middleware(SecurityHeaders, hsts=console.secure, importmap=code.importmap_csp)]
    if console.cfg.web.host:  # the passkeys' RP id: the one name the console answers to
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=[console.cfg.web.host]))
    return Starlette(routes=routes, middleware=middleware)

"""The morning report in the console: GET /api/report/morning?date=&home=&format=json|html|pdf.

Signed-in staff only (app.py wraps it like every other staff route); the same data, HTML and PDF
as `trygg center report morning`, built in the request from the store (sealed data opened in
memory only). Never cached by the browser or a proxy: it names residents and their nights.

The HTML from the API is offered as a download (the console's Content Security Policy,
headers.py, allows no inline style, and the report is one self-contained file with inline CSS, so
that the printed, saved and mailed copies look alike). The PDF opens in the browser's own viewer.

Read in the console: GET /report/morning?date=&home= (page()) is the report as its own page,
opened by the console's "Morgonrapport" button, with links to the night before and after, a date
field, one home's view and "Skriv ut (PDF)". Its own CSP (page_csp) replaces the console's:
  default-src 'none'; style-src 'sha256-...' (each <style> element of this very page, hashed);
  script-src 'none'; img-src 'none'; form-action 'self' (the date field's GET); base-uri 'none';
  frame-ancestors 'none'.
Hashes, not 'unsafe-inline': the charts' CSS is moved to the head once per chart kind and the
only style attribute pygal writes (its hidden tooltip) is dropped (morninghtml._page_chart), so
two or three hashes cover the page, and an injected <style> or style="" (a name or a note is
escaped anyway) would not apply. No script runs at all; nothing is fetched. ?date= and ?home= are
checked strictly; a bad value is one Swedish sentence, 400.
"""

import base64
import hashlib
import re
from datetime import date, datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from starlette.responses import HTMLResponse, JSONResponse, Response

from base.errors import TryggError
from protocol.times import check_timezone
from protocol.topics import check_home_id

NO_STORE = {"Cache-Control": "no-store"}
PAGE = "/report/morning"
API = "/api/report/morning"
ZONE = "Europe/Stockholm"
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_STYLE = re.compile(r"<style[^>]*>(.*?)</style>", re.DOTALL)
FIRST_MORNING = date(2020, 1, 1)


def page_csp(html: str) -> str:
    """The page's CSP: only its own <style> elements (by SHA-256), nothing else at all."""
    hashes = sorted({"'sha256-" + base64.b64encode(hashlib.sha256(css.encode()).digest()).decode() + "'"
                     for css in _STYLE.findall(html)})
    styles = " ".join(hashes) or "'none'"
    return (f"default-src 'none'; style-src {styles}; script-src 'none'; "
            "img-src 'none'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")


def _html(text: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(text, status, headers={**NO_STORE, "Content-Security-Policy": page_csp(text)})


def message_page(title: str, text: str, status: int) -> HTMLResponse:
    """A short Swedish page (a refusal, a bad value) under the same strict CSP."""
    from markupsafe import escape

    return _html(f'<!doctype html><html lang="sv"><head><meta charset="utf-8"><title>{escape(title)}</title>'
                 "<style>body{font-family:sans-serif;font-size:20px;max-width:40rem;margin:2rem auto;padding:0 1rem}"
                 "a{color:#1d4f8a}</style></head><body>"
                 f'<h1>{escape(title)}</h1><p role="alert">{escape(text)}</p>'
                 f'<p><a href="{PAGE}">Dagens morgonrapport</a> · <a href="/">Till konsolen</a></p></body></html>', status)


def signed_out_page() -> HTMLResponse:
    return message_page("Inte inloggad", "Logga in i konsolen först; öppna sedan morgonrapporten därifrån.", 401)


def _morning(text: str | None, today: date) -> date:
    """?date=: YYYY-MM-DD, a real day, not after today; ValueError in Swedish otherwise."""
    if text is None or text == "":
        return today
    if not _DATE.fullmatch(text):
        raise ValueError(f"Datumet ska skrivas ÅÅÅÅ-MM-DD, till exempel {today.isoformat()}, inte {text[:40]!r}.")
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text} är inget datum som finns.") from None
    if day > today:
        raise ValueError(f"Morgonen {text} har inte kommit än: välj {today.isoformat()} eller tidigare.")
    if day < FIRST_MORNING:
        raise ValueError(f"Det finns ingen rapport för {text}: välj en morgon från {FIRST_MORNING.isoformat()}.")
    return day


def _home(console, text: str | None) -> str | None:
    """?home=: a home id enrolled here; ValueError in Swedish otherwise."""
    if text is None or text == "":
        return None
    try:
        check_home_id(text)
    except ValueError:
        raise ValueError(f"{text[:40]!r} är inget hem-id (små bokstäver, siffror och bindestreck).") from None
    if not (console.cfg.center.homes_dir / f"{text}.pub").exists():
        raise ValueError(f"Hemmet {text} finns inte här.")
    return text


def page(console, params) -> Response:
    """The morning report as the console's own page (see the module's docstring)."""
    from ..reports.morning import Settings, report
    from ..reports.morninghtml import to_html

    now = console.clock()
    today = datetime.fromtimestamp(now, ZoneInfo(ZONE)).date()
    try:
        day = _morning(params.get("date"), today)
        home = _home(console, params.get("home"))
    except ValueError as exc:
        return message_page("Morgonrapporten", str(exc), 400)
    try:
        data = report(console.cfg, day, home, Settings(ZONE, outcomes=dict(console.cfg.cases.outcomes)), now)
    except TryggError as exc:
        return message_page("Morgonrapporten", f"Rapporten gick inte att göra: {exc}", 400)

    def link(base: str, morning: date, **extra) -> str:
        return f"{base}?" + urlencode({"date": morning.isoformat(), **({"home": home} if home else {}), **extra})
    nav = {"base": PAGE, "home": home, "today": today.isoformat(),
           "prev": link(PAGE, day - timedelta(days=1)),
           "next": link(PAGE, day + timedelta(days=1)) if day < today else None,
           "all": f"{PAGE}?date={day.isoformat()}", "pdf": link(API, day, format="pdf")}
    return _html(to_html(data, nav))


def morning(console, params) -> Response:
    """One morning report, in the format asked for; 400 with one line for bad input."""
    from ..reportcli import parse_day, render
    from ..reports.morning import Settings, report

    fmt = params.get("format", "json")
    if fmt not in ("json", "html", "pdf"):
        return JSONResponse({"error": f"format must be json, html or pdf, got {fmt!r}"}, 400)
    try:
        zone = check_timezone(params.get("zone", "Europe/Stockholm"))
    except ValueError as exc:
        return JSONResponse({"error": f"zone: {exc}"}, 400)
    try:
        now = console.clock()
        day: date = parse_day(params.get("date"), zone, now)
        data = report(console.cfg, day, params.get("home") or None,
                      Settings(zone, outcomes=dict(console.cfg.cases.outcomes)), now)
    except TryggError as exc:
        return JSONResponse({"error": str(exc).replace("--date", "date")}, 400)
    if fmt == "json":
        return JSONResponse(data, headers=NO_STORE)
    payload = render(data, fmt)
    name = f"morgonrapport-{data['date']}" + (f"-{params['home']}" if params.get("home") else "")
    if fmt == "html":
        return Response(payload, media_type="text/html; charset=utf-8",
                        headers={**NO_STORE, "Content-Disposition": f'attachment; filename="{name}.html"'})
    return Response(payload, media_type="application/pdf",
                    headers={**NO_STORE, "Content-Disposition": f'inline; filename="{name}.pdf"'})

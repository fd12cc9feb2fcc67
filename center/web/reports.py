"""The morning report in the console: GET /api/report/morning?date=&home=&format=json|html|pdf.

Signed-in staff only (app.py wraps it like every other staff route); the same data, HTML and PDF
as `trygg center report morning`, built in the request from the store (sealed data opened in
memory only). Never cached by the browser or a proxy: it names residents and their nights.

The HTML is offered as a download rather than shown in the console: the console's Content
Security Policy (headers.py) allows no inline style, and the report is one self-contained file
with inline CSS, so that the printed, saved and mailed copies look alike. The PDF opens in the
browser's own viewer. The console page itself reads the JSON.
"""

from datetime import date

from starlette.responses import JSONResponse, Response

from base.errors import TryggError
from protocol.times import check_timezone

NO_STORE = {"Cache-Control": "no-store"}


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

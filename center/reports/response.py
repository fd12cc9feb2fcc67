"""The monthly response-time report: alarm cases against the municipality's promise.

Data first (`build`: the JSON format), then one Jinja2 template for HTML, and the PDF from that
same HTML (reports/__init__.py). A case belongs to the month it was opened in, counted in the
promise's time zone; its kind is the alarm that opened it (its first kind). Times are from
opening to accepted / on site / closed, as the case row records them; the judgement against
the promise is promise.judge's (one rule, stated in the footnote). Every case outside the
promise is listed with its outcome and note, which are sealed at rest and opened here in memory
only (CaseDesk opens them). Never writes to the store.
"""

from datetime import UTC, datetime

from protocol.messages import iso

from ..cases import Case, CaseDesk
from ..wording import Words
from . import stats
from .promise import NO_AREA, PromiseConfig, judge

FOOTNOTE_RULE = ("Svarat i tid: ärendet togs (eller, utan att tas, sattes på plats eller avslutades) inom "
                 "svarslöftet. På plats i tid: personal på plats inom löftet, eller ärendet avslutat utan besök "
                 "inom löftet (larmet återkallat); ett ärende som ännu inte nått dit bedöms vid rapportens tid. "
                 "Ett ärende hör till den månad det öppnades; dess larmtyp är det larm som öppnade det.")


def load_cases(desk: CaseDesk, start: float, end: float) -> list[Case]:
    """The cases opened in [start, end), oldest first, their sealed contents opened in memory."""
    rows = desk.db.query(f"SELECT {desk._COLUMNS} FROM cases WHERE opened >= ? AND opened < ? ORDER BY opened, id",
                         (start, end))
    return [desk._case(row) for row in rows]


def _group(items: list[tuple]) -> dict:
    """Figures of a group of (case, verdict)."""
    n = len(items)
    answered = sum(v.answer_ok for _c, v in items)
    on_site = sum(v.on_site_ok for _c, v in items)
    both = sum(v.ok for _c, v in items)

    def share(k):
        return None if not n else k / n

    return {
        "cases": n,
        "to_accept": stats.spread([v.answer_s for _c, v in items if v.answer_s is not None]),
        "to_on_site": stats.spread([v.on_site_s for _c, v in items if v.on_site_s is not None]),
        "to_close": stats.spread([v.close_s for _c, v in items if v.close_s is not None]),
        "within": {"answer": answered, "on_site": on_site, "both": both},
        "share_within": {"answer": share(answered), "on_site": share(on_site), "both": share(both)},
        "outside": n - both,
    }


def build(cases: list[Case], promise: PromiseConfig, outcomes: dict[str, str], month: str, now: float) -> dict:
    """The report as plain data (the JSON format)."""
    words = Words("sv")
    area_of = promise.area_of()
    judged = []
    for case in cases:
        area = area_of.get(case.home, NO_AREA)
        terms = promise.terms(area)
        judged.append((case, judge(case.opened, case.accepted, case.on_site, case.closed, terms, now), terms))
    zone = promise.time_zone

    areas = [a for a in promise.areas] + [NO_AREA]
    by_area = []
    for area in areas:
        items = [(c, v) for c, v, t in judged if t.area == area]
        if not items and area == NO_AREA:
            continue
        terms = promise.terms(area)
        by_area.append({"area": area, "label": terms.label,
                        "promise": {"answer_s": terms.answer_s, "on_site_s": terms.on_site_s}, **_group(items)})
    kinds = sorted({_kind(c) for c, _v, _t in judged})
    by_kind = [{"kind": k, "label": words.kind(k), **_group([(c, v) for c, v, _t in judged if _kind(c) == k])}
               for k in kinds]
    outside = []
    for case, verdict, terms in judged:
        if verdict.ok:
            continue
        missed = [name for name, ok in (("answer", verdict.answer_ok), ("on_site", verdict.on_site_ok)) if not ok]
        outside.append({
            "case": case.id, "home": case.home, "area": terms.area, "area_label": terms.label,
            "kind": _kind(case), "kind_label": words.kind(_kind(case)), "kinds": list(case.kinds),
            "opened": _iso(case.opened), "opened_local": stats.local(case.opened, zone),
            "to_accept_s": _r(verdict.answer_s), "to_on_site_s": _r(verdict.on_site_s),
            "to_close_s": _r(verdict.close_s), "missed": missed, "state": case.state,
            "outcome": case.outcome, "outcome_label": outcomes.get(case.outcome or "", case.outcome),
            "note": case.note,
            "promise": {"answer_s": terms.answer_s, "on_site_s": terms.on_site_s},
        })
    return {
        "report": "response", "month": month, "month_name": stats.month_name(month), "time_zone": zone,
        "generated": _iso(now), "generated_local": stats.local(now, zone),
        "promise": {"answer_s": promise.answer_within_min * 60, "on_site_s": promise.on_site_within_min * 60},
        "total": _group([(c, v) for c, v, _t in judged]),
        "by_area": by_area, "by_kind": by_kind, "outside": outside,
        "footnote": [FOOTNOTE_RULE, stats.DEFINITION],
    }


def report(cfg, store, month: str, now: float) -> dict:
    """The month's report from a store, with the config's promise and outcome labels."""
    from ..service import case_desk

    start, end = stats.month_bounds(month, cfg.promise.time_zone)
    cases = load_cases(case_desk(cfg, store), start, end)
    return build(cases, cfg.promise, cfg.cases.outcomes, month.strip(), now)


def to_html(data: dict) -> str:
    from .render import render

    return render("response.html.j2", data)


def _kind(case: Case) -> str:
    return case.kinds[0] if case.kinds else "unknown"


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def _iso(ts: float) -> str:
    return iso(datetime.fromtimestamp(ts, UTC))

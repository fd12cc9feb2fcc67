"""The morning report's HTML: the JSON data (morning.py) through templates/morning.html.j2.

Homes that need attention come first, each with its flags in plain Swedish and small charts
(charts.py); the calm homes follow as one line each, so 300 homes still fit a few pages. Local
times in the report's zone. Autoescaped: a name or a note can hold anything a person typed.
Self-contained (inline CSS and SVG), so pdf.py prints exactly this document.
"""

import html
import re
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from . import charts

TEMPLATES = Path(__file__).with_name("templates")
MAX_CARDS = 80  # homes drawn in full (with charts); the rest are one line each
KINDS = {"bed_exit": "Uppstigning ur sängen", "door_open": "Dörren öppnad", "dose_missed": "Missad dos",
         "fall": "Fall", "help": "Larmknappen", "inactivity": "Ingen rörelse", "visit_needed": "Besök behövs"}
WEEKDAYS = ("mån", "tis", "ons", "tor", "fre", "lör", "sön")
MONTHS = ("januari", "februari", "mars", "april", "maj", "juni", "juli", "augusti", "september", "oktober",
          "november", "december")


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    m, s = divmod(round(seconds), 60)
    return f"{m} min" if m else f"{s} s"


@lru_cache(maxsize=1)
def _environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["minutes"] = _minutes
    env.filters["kind"] = lambda k: KINDS.get(k, k)
    return env


_STYLE = re.compile(r"<style[^>]*>(.*?)</style>", re.DOTALL)
_CHART_ID = re.compile(r' id="(chart-[0-9a-f-]+)"')


def _page_chart(svg: str, kind: str, styles: dict[str, None]) -> str:
    """A chart for the console's page (web/reports.py): its <style> moved to the page's head, once
    per chart kind, so that the page's CSP allows a couple of style hashes rather than one per chart
    (hundreds: a header too long for a proxy); pygal's per-chart id becomes a class of the kind.
    The hidden tooltip's style attribute goes (nothing shows it: charts.py strips the script), so
    the page needs no 'unsafe-inline' and no 'unsafe-hashes'."""
    found = _CHART_ID.search(svg)
    if found:
        chart = found.group(1)
        svg = svg.replace(found.group(0), "", 1).replace(f"#{chart}", f".pygal-chart.{kind}")
        svg = svg.replace('class="pygal-chart"', f'class="pygal-chart {kind}"', 1)
    for css in _STYLE.findall(svg):
        styles[html.unescape(css)] = None  # XML-escaped inside SVG; raw text in the head
    return _STYLE.sub("", svg).replace(' style="opacity: 0"', "")


def to_html(data: dict, nav: dict | None = None) -> str:
    """The report's HTML; with nav (the console's page: links to other nights, one home, the PDF)
    every chart's style is in the head (_page_chart), so the page has no inline style but its
    <style> elements (hashed in its CSP)."""
    from markupsafe import Markup

    zone = ZoneInfo(data["zone"])
    styles: dict[str, None] = {}

    def chart(svg: str, kind: str) -> Markup:
        return Markup(_page_chart(svg, kind, styles) if nav is not None else svg)

    def local(at: str | None, fmt: str = "%H:%M") -> str:
        return "–" if not at else datetime.fromisoformat(at).astimezone(zone).strftime(fmt)

    day = datetime.fromisoformat(data["date"])
    cards, calm = [], []
    for h in data["homes"]:
        if (h["flags"] or h["cases"]) and len(cards) < MAX_CARDS or len(data["homes"]) == 1:
            cards.append({**h, "charts": {
                "bed": chart(charts.per_night(h["nights"][-14:], "bed_exits", "Uppstigningar"), "chart-bar"),
                "activity": chart(charts.per_night(h["nights"][-14:], "activity", "Rörelse"), "chart-bar"),
                "doses": chart(charts.doses(h["doses"]["days"]), "chart-doses")}})
        else:
            calm.append(h)
    env = _environment()
    env.filters["local"] = local
    return env.get_template("morning.html.j2").render(
        r=data, cards=cards, calm=calm, nav=nav, chart_css=[Markup(css) for css in styles],
        title=f"Morgonrapport {WEEKDAYS[day.weekday()]} {day.day} {MONTHS[day.month - 1]} {day.year}")

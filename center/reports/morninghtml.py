"""The morning report's HTML: the JSON data (morning.py) through templates/morning.html.j2.

Homes that need attention come first, each with its flags in plain Swedish and small charts
(charts.py); the calm homes follow as one line each, so 300 homes still fit a few pages. Local
times in the report's zone. Autoescaped: a name or a note can hold anything a person typed.
Self-contained (inline CSS and SVG), so pdf.py prints exactly this document.
"""

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


def to_html(data: dict) -> str:
    from markupsafe import Markup

    zone = ZoneInfo(data["zone"])

    def local(at: str | None, fmt: str = "%H:%M") -> str:
        return "–" if not at else datetime.fromisoformat(at).astimezone(zone).strftime(fmt)

    day = datetime.fromisoformat(data["date"])
    cards, calm = [], []
    for h in data["homes"]:
        if (h["flags"] or h["cases"]) and len(cards) < MAX_CARDS or len(data["homes"]) == 1:
            cards.append({**h, "charts": {
                "bed": Markup(charts.per_night(h["nights"][-14:], "bed_exits", "Uppstigningar")),
                "activity": Markup(charts.per_night(h["nights"][-14:], "activity", "Rörelse")),
                "doses": Markup(charts.doses(h["doses"]["days"]))}})
        else:
            calm.append(h)
    env = _environment()
    env.filters["local"] = local
    return env.get_template("morning.html.j2").render(
        r=data, cards=cards, calm=calm,
        title=f"Morgonrapport {WEEKDAYS[day.weekday()]} {day.day} {MONTHS[day.month - 1]} {day.year}")

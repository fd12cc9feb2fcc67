"""HTML of the response-time and resident reports: one Jinja2 environment over reports/templates.

Autoescaped (a note or a name can hold anything a person typed); the filters turn seconds and
shares into what people read. Templates are self-contained (inline CSS, nothing fetched), so the
PDF (pdf.py) renders the very same document.
"""

from functools import lru_cache
from pathlib import Path

from . import stats

TEMPLATES = Path(__file__).with_name("templates")


def _percent(share: float | None) -> str:
    return "–" if share is None else f"{share * 100:.1f} %".replace(".", ",")


def _whole_minutes(seconds: float) -> str:
    """A promised time: "3 min", "1 h 30 min"."""
    m = round(seconds / 60)
    return f"{m} min" if m < 60 else (f"{m // 60} h" + (f" {m % 60} min" if m % 60 else ""))


@lru_cache(maxsize=1)
def _environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["minutes"] = stats.minutes
    env.filters["percent"] = _percent
    env.filters["whole_minutes"] = _whole_minutes
    return env


def render(template: str, data: dict) -> str:
    return _environment().get_template(template).render(**data)

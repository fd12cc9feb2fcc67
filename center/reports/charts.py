"""Small charts a nurse takes in at a glance, drawn server-side as SVG by pygal (a maintained
charting library; no plotting code of our own), inlined in the report's HTML and PDF.

No script in a report: pygal puts its tooltip configuration in a <script> even without its
JavaScript, so that element is removed; the charts are static pictures.
"""

import re

import pygal
from pygal.style import Style

STYLE = Style(background="white", plot_background="white", foreground="#333", foreground_strong="#333",
              foreground_subtle="#ccc", colors=("#3b6ea5", "#e0a030", "#c0392b"), font_family="sans-serif",
              label_font_size=10, major_label_font_size=10, value_font_size=9, tooltip_font_size=9)
_SCRIPT = re.compile(r"<script\b.*?</script>", re.DOTALL)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)


def _chart(kind, title: str, labels: list[str]):
    chart = kind(width=300, height=90, show_legend=False, js=[], disable_xml_declaration=True, style=STYLE,
                 explicit_size=True, show_y_guides=False, show_x_labels=False, show_minor_y_labels=False,
                 margin=4, spacing=2, title=None, y_labels_major_count=2, print_values=False,
                 include_x_axis=True, truncate_label=-1, tooltip_border_radius=0)
    chart.x_labels = labels
    return chart


def _svg(chart) -> str:
    return _COMMENT.sub("", _SCRIPT.sub("", chart.render(is_unicode=True)))


def per_night(nights: list[dict], metric: str, title: str) -> str:
    """Bars per night, the last night rightmost; an unknown night is a gap."""
    chart = _chart(pygal.Bar, title, [n["night"] for n in nights])
    chart.add(title, [n.get(metric) for n in nights])
    return _svg(chart)


def doses(days: list[dict]) -> str:
    """Taken, late and missed doses per day, stacked (blue, amber, red)."""
    chart = _chart(pygal.StackedBar, "Doser", [d["date"] for d in days])
    for key, label in (("taken", "tagna"), ("late", "sena"), ("missed", "missade")):
        chart.add(label, [d[key] for d in days])
    return _svg(chart)

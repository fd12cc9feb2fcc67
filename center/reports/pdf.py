"""HTML to PDF with WeasyPrint: the printable reports are the same HTML the console shows.

WeasyPrint (a maintained HTML/CSS-to-PDF library, in Debian as python3-weasyprint) rather than a
headless browser: no browser on the center's server, and it renders print CSS (page size, page
breaks, running headers) as written. Imported only when a PDF is asked for (it loads Pango).
"""


def html_to_pdf(html: str) -> bytes:
    """The PDF of one self-contained HTML document (inline CSS and SVG; nothing fetched)."""
    import weasyprint

    return weasyprint.HTML(string=html, url_fetcher=_refuse_fetch).write_pdf()


def _refuse_fetch(url: str, *args, **kwargs):
    """A report never loads anything from outside itself: no network, no file read by a URL."""
    raise ValueError(f"a report may not fetch {url!r}")

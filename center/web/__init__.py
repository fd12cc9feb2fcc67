"""The night staff's web console (`trygg center web`): app.py serves it, session.py signs staff
in by the key their browser holds, catalog.py and ui.json hold its words, static/ the page."""

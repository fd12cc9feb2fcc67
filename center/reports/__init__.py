"""The reports people read in daylight: the morning report, response times, the resident's record.

Each report is built from the store (sealed data opened in memory only), as plain data first (the
JSON format), then rendered to HTML through one Jinja2 template, and to PDF from that same HTML
(center/reports/pdf.py), so the three formats cannot disagree.
"""

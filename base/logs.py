"""Logging set-up: the journal under systemd (Debian's python3-systemd), stderr otherwise.

Under systemd each record goes to journald with fields a technician or the municipality's log
collector can filter on, as well as the message:
  TRYGG_HOME       the home the record is about (set once for a device; a center's log call passes
                   extra={"home": ...})
  TRYGG_COMPONENT  which part spoke: uplink, outbox, receiver, web, ... (the module's package part,
                   or extra={"component": ...})
  TRYGG_EVENT_ID   the event's id, when the log call passes extra={"event_id": ...}
e.g. `journalctl -u trygg TRYGG_EVENT_ID=01J...`. Fields carry routing data only, never an event's
contents (the journal is plaintext on the card). Without python3-systemd (a development venv) or
outside systemd, records go to stderr as before, unchanged.
"""

import logging
import os
import sys

FIELDS = {"home": "TRYGG_HOME", "component": "TRYGG_COMPONENT", "event_id": "TRYGG_EVENT_ID"}


def component_of(logger_name: str) -> str:
    """agent.uplink -> uplink, center.web.app -> web; a top-level logger is its own component."""
    parts = logger_name.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


class JournalFields(logging.Filter):
    """Adds the TRYGG_* fields to each record (journald takes upper-case attributes as fields)."""

    def __init__(self, home: str | None = None) -> None:
        super().__init__()
        self.home = home

    def filter(self, record: logging.LogRecord) -> bool:
        values = {"home": getattr(record, "home", None) or self.home,
                  "component": getattr(record, "component", None) or component_of(record.name),
                  "event_id": getattr(record, "event_id", None)}
        for key, field in FIELDS.items():
            if values[key] is not None:
                setattr(record, field, str(values[key]))
        return True


def under_systemd() -> bool:
    return bool(os.environ.get("INVOCATION_ID") or os.environ.get("JOURNAL_STREAM"))


def journal_handler(home: str | None = None) -> logging.Handler | None:
    """python3-systemd's JournalHandler with Trygg's fields, or None when it is not installed."""
    try:
        from systemd.journal import JournalHandler  # Debian's python3-systemd (the package's venv sees it)
    except ImportError:
        return None  # stderr still reaches the journal under systemd
    handler = JournalHandler(SYSLOG_IDENTIFIER="trygg")
    handler.addFilter(JournalFields(home))
    return handler


def setup(level: str = "info", home: str | None = None) -> None:
    root = logging.getLogger()
    root.setLevel(level.upper())
    handler = journal_handler(home) if under_systemd() else None
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.handlers[:] = [handler]

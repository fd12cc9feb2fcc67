"""Logging set-up: the journal under systemd (when systemd-python is installed), stderr otherwise."""

import logging
import os
import sys


def setup(level: str = "info") -> None:
    root = logging.getLogger()
    root.setLevel(level.upper())
    handler: logging.Handler | None = None
    if os.environ.get("INVOCATION_ID") or os.environ.get("JOURNAL_STREAM"):
        try:
            from systemd.journal import JournalHandler  # optional dependency

            handler = JournalHandler(SYSLOG_IDENTIFIER="trygg")
        except ImportError:
            handler = None  # stderr still reaches the journal under systemd
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.handlers[:] = [handler]

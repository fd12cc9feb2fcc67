"""Trygg agent: the daemon on each home's Raspberry Pi that gets every alarm to the night staff."""

__version__ = "0.1.0"

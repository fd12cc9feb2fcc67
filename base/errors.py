"""One root for every error Trygg raises on purpose.

Each error says what was wrong and what to do about it; the CLI prints the message and exits
non-zero instead of a traceback. Specific errors also inherit the builtin they resemble, so
callers that only know the builtin still catch them (the gpiozero pattern).
"""

# The one root, shared by both sides, and the protocol's refusals (each with a stable code).
from protocol.errors import EnvelopeError, MessageError, ProtocolError, TryggError  # noqa: F401


class ConfigError(TryggError, ValueError):
    """A configuration file or value is wrong; the message names the key."""


class KeyFileError(TryggError, ValueError):
    """A key file is missing, malformed or readable by others."""


class StorageError(TryggError, OSError):
    """The local database cannot be used."""


class DiskFullError(StorageError):
    """The local database could not write for lack of disk space."""


class DaemonNotRunning(TryggError, ConnectionError):
    """The CLI could not reach the daemon's control socket."""

"""The root of every error Trygg raises on purpose, and the protocol's own.

The root lives here, in the layer below both sides, so that the device's and the receiving
side's errors (base/errors.py and each side's own) all derive from one class. The protocol's
refusals carry a stable code (refusals.py) besides their text: programs and test vectors
compare the code, people read the text.
"""


class TryggError(Exception):
    """Root of all Trygg errors."""


class ProtocolError(TryggError, ValueError):
    """Input the protocol refuses. `code` is stable (refusals.py); str() is the text for people;
    `where` is the field's path inside a body (`args.lock`, `ids.3`), or "" for the whole."""

    def __init__(self, text: str, *, code: str, where: str = "") -> None:
        super().__init__(text)
        self.code = code
        self.where = where


class EnvelopeError(ProtocolError):
    """A message could not be opened or verified; never act on it (codes: refusals.ENVELOPE)."""


class MessageError(ProtocolError):
    """A body that is not a valid message of its kind, or not for where it arrived (codes:
    refusals.DECODE and refusals.PLACE)."""

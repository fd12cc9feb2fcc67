"""The root of every error Trygg raises on purpose, and the protocol's own.

The root lives here, in the layer below both sides, so that the device's and the receiving
side's errors (base/errors.py and each side's own) all derive from one class.
"""


class TryggError(Exception):
    """Root of all Trygg errors."""


class EnvelopeError(TryggError, ValueError):
    """A message could not be opened or verified; never act on it."""

"""The fleet report inside a home's status: sealed by the device, opened by the center. No I/O.

The status message is signed but readable by anyone on the broker (presence.py), while the
fleet report says things about a person's home (free disk, open faults); so the report is a
normal envelope (envelope.py: signed by the device, padded, sealed to the center's key) bound
to the home's status topic, carried in the status's `report` field as base64. Bound to the
topic, it opens for no other home's status; signed by the device, nobody else can write one.

Both sides use this one module so that the encoding and the checks are written once.
"""

import base64
import binascii

from cryptography.hazmat.primitives.asymmetric import ed25519

from . import envelope, topics
from .envelope import SignerLookup
from .errors import EnvelopeError, MessageError
from .kem import KemPrivate, KemPublic
from .messages import MAX_REPORT_ENVELOPE, MAX_REPORT_TEXT, FleetReport, decode, encode


def _status_home(topic: str) -> str:
    """The home of a status topic; ValueError for any other topic."""
    where = topics.parse(topic)
    if where.channel != "status":
        raise MessageError(f"a fleet report belongs on a status topic, not {topic!r}", code="wrong_topic")
    return where.home


def seal_report(report: FleetReport, topic: str, sign: ed25519.Ed25519PrivateKey, center: KemPublic) -> str:
    """The device's side: the report signed, padded and sealed to the center, bound to its
    status topic, as the base64 text of the status's `report` field.

    ValueError when the topic is not this home's status topic or the sealed report would exceed
    MAX_REPORT_ENVELOPE (the model's bounds keep it far below)."""
    home = _status_home(topic)
    if report.home != home:
        raise ValueError(f"report for {report.home!r} cannot go on {home!r}'s status")
    sealed = envelope.seal(encode(report), topic, sign, center)
    if len(sealed) > MAX_REPORT_ENVELOPE:
        raise ValueError(f"sealed report of {len(sealed)} bytes exceeds {MAX_REPORT_ENVELOPE}")
    return base64.b64encode(sealed).decode("ascii")


def open_report(text: str, topic: str, opening: list[KemPrivate], signer: SignerLookup) -> FleetReport:
    """The center's side: open and verify the `report` of a status received on `topic`.

    opening: the center's private HPKE keys (current and, during a rotation, the next);
    signer: the home's signing key lookup, as for the status itself. Raises EnvelopeError when it
    does not open or verify (another home's report, another key, tampered), ValueError when the
    text is not base64 or the report is not a valid FleetReport for this home."""
    home = _status_home(topic)
    if not isinstance(text, str) or len(text) > MAX_REPORT_TEXT:
        raise MessageError(f"report: expected base64 text of at most {MAX_REPORT_TEXT} characters",
                           code="bad_value", where="report")
    try:
        sealed = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise MessageError("report: not valid base64", code="bad_value", where="report") from None
    opened = envelope.open_sealed(sealed, topic, opening, signer)
    if opened.version != envelope.VERSION:  # reports were never sealed unpadded
        raise EnvelopeError(f"report in an envelope of version {opened.version}", code="bad_version")
    report = decode(opened.body, FleetReport)
    if report.home != home:
        raise MessageError(f"report for {report.home!r} published on {home!r}'s status", code="wrong_home",
                           where="home")
    return report

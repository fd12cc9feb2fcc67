"""Message bodies (the JSON inside envelopes), validated strictly at the edge.

Every message from the network is parsed here before anything acts on it, exactly as
docs/protocol.md §6 writes it: the JSON by the one strict reader (wirejson.py: no duplicate
keys, no NaN), the fields by the message's model read as wiremodel.py says (one spelling per
field, JSON types as declared). Anything else is refused with a MessageError (a ValueError)
whose code is stable (refusals.DECODE) and whose text says why. Bodies are compact UTF-8 JSON
with sorted keys so they are easy to reproduce in test vectors.
"""

import base64
import json
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from . import wirejson
from .errors import MessageError
from .ids import is_valid_id
from .topics import check_home_id
from .wiremodel import V1, Base64Text, WireModel, WireTime, read, refusal

from .events import CLASSES, KIND_PATTERN, TEST_KIND
MAX_ACK_IDS = 1000
MAX_BODY_JSON = 16 * 1024
MAX_MESSAGE_JSON = 64 * 1024  # the largest message: an ack of MAX_ACK_IDS ids
MAX_REPORT_ENVELOPE = 8 * 1024  # a fleet report's sealed envelope (fleet.py): at most this many bytes
MAX_REPORT_TEXT = 4 * MAX_REPORT_ENVELOPE // 3 + 4  # ... as base64
BASE64_PATTERN = r"^[A-Za-z0-9+/]*={0,2}$"  # the alphabet; the exact form is wiremodel's Base64Text


def _valid_id(value: str) -> str:
    if not is_valid_id(value):
        raise ValueError("expected a UUIDv7 id")
    return value


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("time must carry a UTC offset")
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00
        raise ValueError("time is out of range") from None


EventId = Annotated[str, AfterValidator(_valid_id)]
Challenge = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
HomeId = Annotated[str, AfterValidator(check_home_id)]
UtcTime = Annotated[datetime, WireTime, AfterValidator(_utc)]  # off the wire: YYYY-MM-DDTHH:MM:SS.mmmZ only


class _Strict(WireModel):
    # Strictness comes from decode(): read strictly as wiremodel.read says. In Python a field
    # may be given by name (EventMessage(cls=...)); off the wire only by its alias ("class").
    model_config = ConfigDict(extra="forbid", frozen=True, validate_by_name=True, validate_by_alias=True)


class EventMessage(_Strict):
    """An event from a home: what happened, where, when, and whether the clock was trustworthy."""

    v: V1 = 1
    t: Literal["event"] = "event"
    id: EventId
    home: HomeId
    cls: Literal[CLASSES] = Field(alias="class")  # type: ignore[valid-type]
    kind: str = Field(pattern=KIND_PATTERN)
    time: UtcTime
    clock_synced: bool
    body: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _test_is_its_own_class(self) -> "EventMessage":
        # Test traffic travels only as class test, never in the alarm lane (events.py).
        if (self.cls == "test") != (self.kind == TEST_KIND):
            raise ValueError(f"kind {TEST_KIND!r} travels as class 'test' and only it does, got class "
                             f"{self.cls!r} with kind {self.kind!r}")
        return self


class AckMessage(_Strict):
    """The center's signed statement that it has durably recorded these event ids."""

    v: V1 = 1
    t: Literal["ack"] = "ack"
    home: HomeId
    ids: list[EventId] = Field(min_length=1, max_length=MAX_ACK_IDS)
    time: UtcTime


class StatusMessage(_Strict):
    """Presence of a home: online (with heartbeat period) or offline. No personal data.

    An online status also carries the device's clock state and its current command
    challenge: a command that echoes the challenge is fresh even when the device's clock
    cannot be trusted (see commands.py); and the fleet report, sealed to the center (fleet.py),
    because what it says of the device describes a person's home.
    """

    v: V1 = 1
    t: Literal["status"] = "status"
    home: HomeId
    state: Literal["online", "offline"]
    time: UtcTime
    heartbeat_s: int = Field(ge=1, le=86400)
    clock_synced: bool | None = None
    challenge: Challenge | None = None
    storage: Literal["ok", "low", "failing"] | None = None  # the device's card: see agent/storageguard.py
    free_bytes: int | None = Field(default=None, ge=0, le=2**53)
    # The fleet report (FleetReport), sealed to the center: base64 of an envelope (fleet.py).
    report: Annotated[str, Base64Text] | None = Field(default=None, min_length=4, max_length=MAX_REPORT_TEXT)

    @model_validator(mode="after")
    def _offline_says_only_offline(self) -> "StatusMessage":
        # The last will and a clean stop carry no challenge, clock state, storage or report: an
        # offline status that does is not one the device makes, so it is not read as one.
        extra = [name for name in ONLINE_ONLY if getattr(self, name) is not None]
        if self.state == "offline" and extra:
            raise PydanticCustomError("online_only", "an offline status carries no {fields}",
                                      {"fields": ", ".join(extra), "field": extra[0]})
        return self


ONLINE_ONLY = ("clock_synced", "challenge", "storage", "free_bytes", "report")  # StatusMessage's online fields


# A component as fault events name it: "storage", "camera", or a driver's "kind:name" ("mat:bedroom").
COMPONENT_PATTERN = r"^[a-z][a-z0-9_]{0,19}(:[a-z][a-z0-9-]{0,31})?$"
MAX_COMPONENTS = 16  # per list: more than a home has drivers; keeps the worst report in a 4 KiB envelope (both suites)
Component = Annotated[str, Field(pattern=COMPONENT_PATTERN)]
Count = Annotated[int, Field(ge=0, le=2**31)]


def _unique(names: list[str]) -> list[str]:
    if len(set(names)) != len(names):
        raise ValueError("names a component twice")
    return names


Components = Annotated[list[Component], Field(max_length=MAX_COMPONENTS), AfterValidator(_unique)]


class OutboxClass(_Strict):
    """One class's queue on the device: rows waiting, and how long the oldest has waited."""

    depth: Count
    oldest_age_s: Annotated[int, Field(ge=0, le=10 * 365 * 86400)] | None = None  # None: nothing waiting


class OutboxDepths(_Strict):
    """The device's outbox, per priority class."""

    alarm: OutboxClass
    event: OutboxClass
    telemetry: OutboxClass
    test: OutboxClass | None = None  # devices from before the test class leave it out


class FleetReport(_Strict):
    """How a home's device is doing, for the center's fleet view; sealed inside each online status.

    Every measurement is optional: None means the device could not tell (no sensor, a collector
    failed), never a guess. Disk space and faults describe a person's home, so it is sealed.
    """

    v: V1 = 1
    t: Literal["fleet_report"] = "fleet_report"
    home: HomeId
    time: UtcTime  # when the device collected it
    version: str | None = Field(default=None, pattern=r"^[0-9A-Za-z][0-9A-Za-z.+!_-]{0,63}$")
    outbox: OutboxDepths | None = None
    unacked_alarms: Count | None = None  # alarms the center has not yet acknowledged
    drivers_down: Components | None = None  # drivers not running, as components
    faults: Components | None = None  # open: a fault event not yet followed by fault_cleared
    cpu_temp_c: float | None = Field(default=None, ge=-60, le=150, allow_inf_nan=False)
    disk_free_bytes: int | None = Field(default=None, ge=0, le=2**53)
    under_voltage: bool | None = None  # now
    under_voltage_seen: bool | None = None  # at some time since boot (a weak or flaky supply)
    clock_synced: bool | None = None
    cert_expires: UtcTime | None = None  # the broker client certificate's not-valid-after


ACTION_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
ArgValue = Annotated[str, Field(max_length=256)] | Annotated[int, Field(ge=-(2**53), le=2**53)] | bool


class CommandMessage(_Strict):
    """A staff member's command to one home, signed by their key and sealed to the device.

    Fresh when the device's synchronized clock is within [issued - skew, expires + skew], or
    when it echoes the device's current challenge; never accepted twice (the id).
    """

    v: V1 = 1
    t: Literal["command"] = "command"
    id: EventId
    home: HomeId
    action: str = Field(pattern=ACTION_PATTERN)
    args: dict[Annotated[str, Field(pattern=ACTION_PATTERN)], ArgValue] = Field(default_factory=dict, max_length=16)
    issued: UtcTime
    expires: UtcTime
    challenge: Challenge | None = None


MAX_LOOKIN_FRAMES = 5


def _jpeg(frame: str) -> str:
    """A frame is a JPEG: its bytes begin with the start-of-image marker FF D8."""
    if base64.b64decode(frame[:4])[:2] != b"\xff\xd8":  # frame is standard base64 already (Base64Text)
        raise ValueError("not a JPEG: the frame's bytes do not begin with FF D8")
    return frame
MAX_LOOKIN_JSON = 1 << 20  # envelope.MAX_ENVELOPE: the device lowers JPEG quality to fit (agent/lookin.py)


class LookinMessage(_Strict):
    """A look-in's pictures, from the device to the one staff member who asked, sealed to their key.

    Answers the command `command`; `frames` are base64 JPEGs already privacy-filtered on the
    device (`privacy` says how). Sent once, over the live link only: never stored on the device.
    """

    v: V1 = 1
    t: Literal["lookin"] = "lookin"
    home: HomeId
    command: EventId
    staff: str = Field(max_length=64)
    time: UtcTime
    privacy: Literal["none", "blur", "silhouette"]
    width: int = Field(ge=1, le=4096)
    height: int = Field(ge=1, le=4096)
    frames: list[Annotated[str, Base64Text, AfterValidator(_jpeg), Field(min_length=4, max_length=MAX_LOOKIN_JSON)]] = Field(
        min_length=1, max_length=MAX_LOOKIN_FRAMES)


def iso(dt: datetime) -> str:
    """UTC time as ISO 8601 with milliseconds and a Z, the one time format on the wire."""
    return dt.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode(message: BaseModel) -> bytes:
    """Canonical JSON bytes of a message (optional fields left unset are omitted)."""
    data = message.model_dump(mode="python", by_alias=True, exclude_none=True)
    data = {k: iso(v) if isinstance(v, datetime) else v for k, v in data.items()}
    out = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    if isinstance(message, EventMessage) and len(out) > MAX_BODY_JSON:
        raise ValueError(f"event of {len(out)} bytes exceeds {MAX_BODY_JSON}")
    return out


# Every message kind on the wire, by its `t`: what a body of that kind is read as (decode).
MESSAGES: dict[str, type[BaseModel]] = {
    "event": EventMessage, "ack": AckMessage, "status": StatusMessage, "fleet_report": FleetReport,
    "command": CommandMessage, "lookin": LookinMessage,
}


def decode(raw: bytes, model: type[BaseModel]) -> Any:
    """Read JSON bytes off the wire as model, strictly (docs/protocol.md §6); MessageError (a
    ValueError) with a stable code and a one-line reason otherwise."""
    limit = MAX_LOOKIN_JSON if model is LookinMessage else MAX_MESSAGE_JSON
    if len(raw) > limit:
        raise MessageError(f"message: {len(raw)} bytes exceeds {limit}", code="too_large")
    return read(model, wirejson.loads(raw))


def first_error(exc: ValidationError, whole: str) -> str:
    """`field.path: what is wrong`, one line, from pydantic's first error (`whole` names the root)."""
    return str(refusal(exc, whole))

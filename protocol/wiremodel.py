"""Reading a body off the wire into its model, exactly as docs/protocol.md §6 writes it, and
turning what is wrong with it into one refusal code (refusals.DECODE).

The models say which fields a body has and what each may hold; this module adds what makes the
reading strict and the same in every implementation: JSON types as declared (pydantic's strict
mode, and an exact integer for `v`), one spelling per field (the alias `class` only, no field
name), no `null` for a field (an unset optional field is left out, as the encoder leaves it),
every field the encoder always writes present (also `v`, `t` and fields with a default such as
`body` or `args`), and times in the one wire format. Outside that context (a model built in
Python, a config file) the models behave as before. Pure: no I/O.
"""

import base64
import binascii
import re
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from .errors import MessageError

WIRE = {"wire": True}  # the validation context of a body read off the wire
WIRE_TIME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$")
_BASE64 = re.compile(r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")


def _on_wire(info: ValidationInfo | None) -> bool:
    return bool(info is not None and isinstance(info.context, dict) and info.context.get("wire"))


def json_type(value: Any) -> str:
    """The JSON type of a decoded value, as the refusal texts name it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number with a fraction or exponent"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class WireModel(BaseModel):
    """Unknown fields are errors and values do not change after checking; read off the wire
    (context WIRE), also: no null for any field, and every field the encoder writes present."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="after")
    def _as_written(self, info: ValidationInfo) -> "WireModel":
        # After the fields' own checks, so a field that is missing or wrong is named first.
        if not _on_wire(info):
            return self
        given = self.model_fields_set
        for name, field in type(self).model_fields.items():
            key = field.alias or name
            if name in given:
                if getattr(self, name) is None:
                    raise PydanticCustomError("wrong_type", "null is not a value: an unset field is left out",
                                              {"field": key})
            elif not (field.default is None and field.default_factory is None):
                raise PydanticCustomError("missing_field", "missing: the encoder always writes this field",
                                          {"field": key})
        return self


def _exact_one(value: Any) -> Any:
    """`v` is the integer 1: not true, not 1.0 (which equal 1 in Python and in pydantic's literal check)."""
    if type(value) is not int:
        raise PydanticCustomError("wrong_type", "expected the integer 1, got {got}", {"got": json_type(value)})
    return value


def _wire_time(value: Any, info: ValidationInfo) -> Any:
    """Off the wire a time is a string in exactly one format: YYYY-MM-DDTHH:MM:SS.mmmZ (UTC)."""
    if not _on_wire(info):
        return value
    if not isinstance(value, str):
        raise PydanticCustomError("wrong_type", "expected a time as a string, got {got}", {"got": json_type(value)})
    if not WIRE_TIME.fullmatch(value):
        raise PydanticCustomError("bad_value", "expected a UTC time as YYYY-MM-DDTHH:MM:SS.mmmZ, got '{value}'",
                                  {"value": value[:40]})
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    except ValueError:
        raise PydanticCustomError("bad_value", "no such time: {value}", {"value": value}) from None


def _base64(value: Any) -> Any:
    """Standard base64 (RFC 4648 §4) with its padding, in its one spelling (unused bits zero)."""
    if not isinstance(value, str):
        raise PydanticCustomError("wrong_type", "expected base64 text, got {got}", {"got": json_type(value)})
    if not _BASE64.fullmatch(value):
        raise PydanticCustomError("bad_value", "not standard base64 with padding (A-Z a-z 0-9 + /, length a "
                                               "multiple of 4, = only at the end)")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise PydanticCustomError("bad_value", "not standard base64") from None
    if base64.b64encode(data).decode("ascii") != value:
        raise PydanticCustomError("bad_value", "not canonical base64: the unused bits of the last character "
                                               "must be zero")
    return value


V1 = Annotated[Literal[1], BeforeValidator(_exact_one)]  # the `v` of every message
WireTime = BeforeValidator(_wire_time)
Base64Text = BeforeValidator(_base64)

# pydantic's error types, as refusal codes: anything not listed is a bad value.
_MISSING = {"missing"}
_UNKNOWN = {"extra_forbidden"}
_OURS = {"wrong_type", "missing_field", "bad_value", "online_only", "unknown_field"}


def _code(error: dict) -> str:
    kind = error["type"]
    if kind in _OURS:
        return kind
    if kind in _MISSING:
        return "missing_field"
    if kind in _UNKNOWN:
        return "unknown_field"
    if kind.endswith("_type") or kind in ("is_instance_of", "model_attributes_type"):
        return "wrong_type"
    if kind == "literal_error":  # a literal of strings given another type is a type error
        expected = str((error.get("ctx") or {}).get("expected", ""))
        if expected.startswith("'") != isinstance(error.get("input"), str):
            return "wrong_type"
    return "bad_value"


_TAGS = {"str", "int", "bool", "float", "list", "dict", "none"}  # pydantic's names of a union's members


def _where(error: dict) -> str:
    """The field's path (`args.lock`, `ids.3`), without pydantic's own parts: a union member's
    tag (`constrained-str`) or `[key]` for a dict key that is wrong."""
    loc = [str(p) for p in error["loc"] if not (isinstance(p, str) and (
        p in _TAGS or p.startswith(("constrained-", "function-", "lax-", "strict-")) or "[" in p))]
    field = (error.get("ctx") or {}).get("field")
    return ".".join(loc + ([str(field)] if field else []))


def refusal(exc: ValidationError, whole: str) -> MessageError:
    """The first error of a failed validation as a MessageError: its code, `where` (the field's
    path) and a text `path: what is wrong`, naming the JSON type given when the type is wrong."""
    errors = exc.errors()
    # Several faults: name an unknown field first (`cls` given for `class` is then named, not the
    # missing `class`); any of the codes is right (docs/protocol.md §6.4), this is only the text.
    first = next((e for e in errors if e["type"] in _UNKNOWN), errors[0])
    code = _code(first)
    where = _where(first)
    text = first["msg"].removeprefix("Value error, ")
    if code == "wrong_type" and first["type"] not in _OURS:
        text = f"{text}, got {json_type(first.get('input'))}"
    elif code == "unknown_field":
        text = "unknown field (not one this message has)"
    elif code == "missing_field" and first["type"] == "missing":
        text = "missing (required)"
    return MessageError(f"{where or whole}: {text}", code=code, where=where)


def check(model: type[BaseModel], data: dict, whole: str) -> Any:
    """Validate data given in Python (not off the wire) as model, with strict types; MessageError otherwise."""
    try:
        return model.model_validate(data, strict=True)
    except ValidationError as exc:
        raise refusal(exc, whole) from None


def read(model: type[BaseModel], data: Any, whole: str = "message") -> Any:
    """Validate data decoded by wirejson.loads as `model`, strictly; MessageError otherwise."""
    if not isinstance(data, dict):
        raise MessageError(f"{whole}: expected a JSON object, got {json_type(data)}", code="wrong_type")
    try:
        return model.model_validate(data, strict=True, by_alias=True, by_name=False, context=WIRE)
    except ValidationError as exc:
        raise refusal(exc, whole) from None

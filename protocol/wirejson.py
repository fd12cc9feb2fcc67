"""The one JSON reader for everything that comes off the wire, on both sides (messages.decode).

Two parsers that read one signed message differently are how signed systems get fooled: one
side checks a duplicate key's first value, the other acts on its last. So this reader takes
only JSON that every conforming parser reads the same way, and refuses the rest with a
MessageError whose code (refusals.DECODE) says why:

  bad_utf8        the bytes are not UTF-8 (no other encoding is guessed, no byte order mark)
  bad_json        not exactly one JSON value (RFC 8259)
  too_deep        arrays and objects nested deeper than MAX_DEPTH
  duplicate_key   an object with a key twice, at any depth
  non_finite      NaN, Infinity, -Infinity, or a number that overflows a 64-bit float
  int_range       an integer beyond +-2^53, which a parser with only doubles reads inexactly
  lone_surrogate  a \\u escape of half a surrogate pair, which names no character

What comes back is plain Python (dict, list, str, int, float, bool, None), never a model: the
message's model checks fields and types (messages.py). Pure: no I/O.
"""

import json
import math
import re
from typing import Any

from .errors import MessageError

MAX_DEPTH = 32
MAX_SAFE_INT = 2**53
_SURROGATE = re.compile("[\ud800-\udfff]")


class _Refused(Exception):
    """Raised inside the json hooks; turned into MessageError with its code."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(text)
        self.code = code


def _pairs(pairs: list[tuple[str, Any]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise _Refused("duplicate_key", f"key {key!r} appears twice in one object")
        out[key] = value
    return out


def _constant(name: str) -> float:
    raise _Refused("non_finite", f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused("non_finite", f"{text} does not fit a 64-bit float")
    return value


def _int(text: str) -> int:
    if len(text) > 17:  # 2**53 has 16 digits: a longer one is out of range (and never costly to parse)
        raise _Refused("int_range", f"the integer {text[:20]}... is beyond +-2^53")
    value = int(text)
    if abs(value) > MAX_SAFE_INT:
        raise _Refused("int_range", f"the integer {text} is beyond +-2^53")
    return value


_DECODER = json.JSONDecoder(object_pairs_hook=_pairs, parse_constant=_constant, parse_float=_float, parse_int=_int)


def _check(value: Any, path: str, depth: int) -> None:
    """Depth and lone surrogates, which the json module lets through."""
    if depth > MAX_DEPTH:
        raise MessageError(f"{path or 'message'}: nested deeper than {MAX_DEPTH} levels", code="too_deep", where=path)
    if isinstance(value, str):
        _no_surrogate(value, path)
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_surrogate(key, path)
            _check(item, f"{path}.{key}" if path else key, depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check(item, f"{path}.{i}" if path else str(i), depth + 1)


def _no_surrogate(text: str, path: str) -> None:
    if _SURROGATE.search(text):
        raise MessageError(f"{path or 'message'}: a \\u escape names half a surrogate pair, not a character",
                           code="lone_surrogate", where=path)


def loads(raw: bytes) -> Any:
    """The one JSON value in raw, read as every conforming parser reads it; MessageError otherwise."""
    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MessageError(f"message: not UTF-8 (byte {exc.start})", code="bad_utf8") from None
    try:
        value = _DECODER.decode(text)
    except _Refused as exc:
        raise MessageError(f"message: {exc}", code=exc.code) from None
    except json.JSONDecodeError as exc:
        raise MessageError(f"message: not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                           code="bad_json") from None
    except RecursionError:
        raise MessageError(f"message: nested deeper than {MAX_DEPTH} levels", code="too_deep") from None
    except ValueError as exc:  # e.g. an integer longer than Python's digit limit (caught above, kept safe)
        raise MessageError(f"message: not JSON: {exc}", code="bad_json") from None
    _check(value, "", 0)
    return value

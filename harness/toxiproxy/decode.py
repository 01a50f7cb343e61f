"""JSON request bodies decoded the way Toxiproxy's Go server decodes them.

Clients are written against the real server, so the edge cases matter more
than elegance: only the first JSON value of a body is read, object keys match
struct fields case-insensitively, ``null`` leaves a field at its default, an
integer field refuses ``1.5``, and a value of the wrong JSON type is a
``400 bad request body`` whose message names the field, like Go's
``encoding/json`` does.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["DecodeError", "field", "get_bool", "get_float", "get_int", "get_str", "parse_body"]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

_DECODER = json.JSONDecoder()


class DecodeError(ValueError):
    """A body or a field that cannot be decoded; the message follows Go's wording."""


def parse_body(body: bytes) -> Any:
    """The first JSON value in ``body`` (trailing bytes are ignored, as in Go)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError("invalid UTF-8 in request body") from exc
    text = text.lstrip(" \t\r\n")
    if not text:
        raise DecodeError("EOF")
    try:
        value, _end = _DECODER.raw_decode(text)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text):
            raise DecodeError("unexpected EOF") from exc
        raise DecodeError(f"invalid character {text[exc.pos]!r} at offset {exc.pos}") from exc
    return value


def json_kind(value: Any) -> str:
    """Go's name for the JSON type of ``value`` (used in error messages)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def expect_object(value: Any, go_type: str) -> dict[str, Any]:
    """The body as an object; ``null`` decodes to an empty one, as in Go."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise DecodeError(
            f"json: cannot unmarshal {json_kind(value)} into Go value of type {go_type}"
        )
    return value


def field(obj: dict[str, Any], name: str) -> tuple[bool, Any]:
    """Look a struct field up: exact key first, then case-insensitively (Go's rule)."""
    if name in obj:
        return True, obj[name]
    lowered = name.lower()
    for key, value in obj.items():
        if key.lower() == lowered:
            return True, value
    return False, None


def _mismatch(value: Any, where: str, go_type: str) -> DecodeError:
    return DecodeError(
        f"json: cannot unmarshal {json_kind(value)} into Go struct field {where} of type {go_type}"
    )


def get_str(obj: dict[str, Any], name: str, default: str, *, where: str) -> str:
    """A string field; absent or ``null`` keeps ``default``."""
    found, value = field(obj, name)
    if not found or value is None:
        return default
    if not isinstance(value, str):
        raise _mismatch(value, f"{where}.{name}", "string")
    return value


def get_bool(obj: dict[str, Any], name: str, default: bool, *, where: str) -> bool:
    """A boolean field; absent or ``null`` keeps ``default``."""
    found, value = field(obj, name)
    if not found or value is None:
        return default
    if not isinstance(value, bool):
        raise _mismatch(value, f"{where}.{name}", "bool")
    return value


def get_int(obj: dict[str, Any], name: str, default: int, *, where: str) -> int:
    """An int64 field: a JSON number without fraction or exponent, in range."""
    found, value = field(obj, name)
    if not found or value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _mismatch(value, f"{where}.{name}", "int64")
    if isinstance(value, float) or not INT64_MIN <= value <= INT64_MAX:
        raise DecodeError(
            f"json: cannot unmarshal number {value} into Go struct field "
            f"{where}.{name} of type int64"
        )
    return value


def get_float(obj: dict[str, Any], name: str, default: float, *, where: str) -> float:
    """A float32 field (any JSON number)."""
    found, value = field(obj, name)
    if not found or value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _mismatch(value, f"{where}.{name}", "float32")
    return float(value)

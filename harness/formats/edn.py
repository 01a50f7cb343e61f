"""A small, fast EDN reader that knows where it is, and EDN writing.

Jepsen stores histories as EDN. The ``edn-format`` package writes EDN well, but
reading a Jepsen history with it is slow (seconds for the Knossos corpus) and
its errors carry no line numbers, which a user needs when a file is bad. This
reader covers the EDN that histories use (maps, vectors, lists, sets, keywords,
symbols, strings, numbers, characters, ``nil``/booleans, ``#_`` discards,
comments and tagged literals) and converts to plain Python values the way
Jepsen's JSON export does: keywords become their name without the colon.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Iterator
from typing import Any

import edn_format

from harness.errors import FormatError
from harness.formats.records import MAX_DEPTH, digits_message

__all__ = ["dumps", "iter_located", "iter_values", "loads"]

_TOKEN = re.compile(
    r"""
    (?P<ws>[\s,]+)
  | (?P<comment>;[^\n]*)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<open>\#\{|[\[({])
  | (?P<close>[\])}])
  | (?P<discard>\#_)
  | (?P<tag>\#[A-Za-z][^\s,\[\](){}"]*)
  | (?P<char>\\(?:newline|space|tab|return|u[0-9a-fA-F]{4}|\S))
  | (?P<atom>[^\s,\[\](){}";]+)
    """,
    re.VERBOSE | re.DOTALL,
)
_INT = re.compile(r"[+-]?\d+N?$")
_FLOAT = re.compile(r"[+-]?\d+(\.\d*)?([eE][+-]?\d+)?M?$")
_STRING_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "b": "\b", "f": "\f"}
_CHARS = {"newline": "\n", "space": " ", "tab": "\t", "return": "\r"}
_CLOSER = {"[": "]", "(": ")", "{": "}", "#{": "}"}


def _unescape(body: str) -> str:
    if "\\" not in body:
        return body
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            n = body[i + 1]
            if n == "u" and i + 5 < len(body) + 1:
                out.append(chr(int(body[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append(_STRING_ESCAPES.get(n, n))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _atom(text: str) -> Any:
    if text == "nil":
        return None
    if text == "true":
        return True
    if text == "false":
        return False
    if text[0] == ":":
        if len(text) == 1:
            raise ValueError("empty keyword ':'")
        return text[1:]
    if _INT.match(text):
        if len(text) > sys.get_int_max_str_digits():
            raise ValueError(digits_message())
        return int(text.rstrip("N"))
    if _FLOAT.match(text):
        v = float(text.rstrip("M"))
        if not math.isfinite(v):
            raise ValueError(f"number {text} is out of range")
        return v
    if text.startswith("##"):
        # ##NaN, ##Inf: a NaN never equals itself, so a read of it would look
        # like a consistency violation; no real history holds one.
        raise ValueError(f"{text} is not a usable value in a history")
    if text[0].isdigit():
        raise ValueError(f"bad number {text!r}")
    return text  # a symbol: keep its name


class _Frame:
    __slots__ = ("items", "kind", "start")

    def __init__(self, kind: str, start: int) -> None:
        self.kind = kind
        self.start = start
        self.items: list[Any] = []


_DISCARD = object()


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def iter_values(text: str, *, path: str | None = None, first_line: int = 1) -> Iterator[Any]:
    """Yield each top-level EDN value in ``text`` as plain Python data.

    Raises :class:`FormatError` naming the line of the problem.
    """
    for _, value in iter_located(text, path=path, first_line=first_line):
        yield value


def iter_located(
    text: str, *, path: str | None = None, first_line: int = 1, unwrap: bool = False
) -> Iterator[tuple[int, Any]]:
    """Yield ``(line, value)`` for each top-level EDN value.

    With ``unwrap``, a first top-level vector or list is see-through: its
    elements are yielded one by one with their own lines, which is how a
    Jepsen history file (one vector of op maps) gets per-op error lines.
    """
    stack: list[_Frame] = []
    discards: list[int] = []  # stack depths at which a #_ waits for its value
    pos = 0
    n = len(text)
    base = 0  # depth at which values are yielded rather than collected
    unwrapped = False

    def fail(msg: str, at: int) -> FormatError:
        return FormatError(msg, path=path, line=_line_of(text, at) + first_line - 1)

    def emit(value: Any, at: int) -> Iterator[tuple[int, Any]]:
        if discards and discards[-1] == len(stack):
            discards.pop()
            return
        if len(stack) > base:
            stack[-1].items.append(value)
        else:
            yield _line_of(text, at) + first_line - 1, value

    while pos < n:
        m = _TOKEN.match(text, pos)
        if m is None:
            raise fail(f"unexpected character {text[pos]!r}", pos)
        kind = m.lastgroup
        tok = m.group()
        start = pos
        pos = m.end()
        if kind == "ws" or kind == "comment":
            continue
        if kind == "open":
            if unwrap and not unwrapped and not stack and tok in ("[", "("):
                unwrapped = True
                base = 1
            if len(stack) - base >= MAX_DEPTH:
                raise fail(f"nested deeper than {MAX_DEPTH} levels", start)
            stack.append(_Frame(tok, start))
        elif kind == "close":
            if not stack:
                raise fail(f"unmatched {tok!r}", start)
            frame = stack.pop()
            if base and not stack:
                base = 0
                if _CLOSER[frame.kind] != tok:
                    raise fail(f"{tok!r} closes {frame.kind!r}", start)
                continue
            if _CLOSER[frame.kind] != tok:
                raise fail(
                    f"{tok!r} closes {frame.kind!r} opened on line {_line_of(text, frame.start)}",
                    start,
                )
            value: Any
            if frame.kind == "{":
                if len(frame.items) % 2:
                    raise fail("a map needs an even number of forms", frame.start)
                it = iter(frame.items)
                try:
                    value = {_key(k): v for k, v in zip(it, it, strict=True)}
                except TypeError as e:
                    raise fail(f"unhashable map key: {e}", frame.start) from None
            else:
                value = frame.items
            yield from emit(value, frame.start)
        elif kind == "string":
            try:
                text_value = _unescape(tok[1:-1])
            except ValueError:
                raise fail("bad \\u escape in a string (4 hex digits expected)", start) from None
            yield from emit(text_value, start)
        elif kind == "discard":
            discards.append(len(stack))
        elif kind == "tag":
            pass  # a tagged literal (#inst "...") reads as its value
        elif kind == "char":
            body = tok[1:]
            if body in _CHARS:
                ch = _CHARS[body]
            elif body.startswith("u") and len(body) == 5:
                ch = chr(int(body[1:], 16))
            else:
                ch = body
            yield from emit(ch, start)
        else:
            try:
                yield from emit(_atom(tok), start)
            except ValueError as e:
                raise fail(str(e), start) from None
    if stack:
        raise fail(f"{stack[-1].kind!r} is never closed", stack[-1].start)
    if discards:
        raise fail("#_ with nothing to discard", n - 1 if n else 0)


def _key(k: Any) -> Any:
    if isinstance(k, list):
        return tuple(_key(x) for x in k)
    if isinstance(k, dict):
        raise TypeError("a map as a map key")
    return k


def loads(text: str, *, path: str | None = None) -> Any:
    """Parse exactly one EDN value."""
    values = list(iter_values(text, path=path))
    if len(values) != 1:
        raise FormatError(f"expected one EDN value, found {len(values)}", path=path)
    return values[0]


def _to_edn(value: Any, *, key: bool = False) -> Any:
    if isinstance(value, str) and key:
        return edn_format.Keyword(value)
    if isinstance(value, dict):
        return {_to_edn(k, key=True): _to_edn(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_edn(v) for v in value]
    return value


def dumps(op_dict: dict[str, Any], *, keyword_fields: tuple[str, ...] = ("type", "f")) -> str:
    """One op as an EDN map, Jepsen style: map keys and the named fields as keywords."""
    out: dict[Any, Any] = {}
    for k, v in op_dict.items():
        if (k in keyword_fields and isinstance(v, str)) or (k == "process" and isinstance(v, str)):
            out[edn_format.Keyword(k)] = edn_format.Keyword(v)
        else:
            out[edn_format.Keyword(k)] = _to_edn(v)
    return str(edn_format.dumps(out))

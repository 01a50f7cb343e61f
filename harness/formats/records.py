"""Turning one decoded record (a JSON object or an EDN map) into an :class:`Op`.

Every reader funnels through here, so every format gets the same checks and the
same error messages: a bad record names its file and line and what was wrong.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from harness.errors import FormatError, HistoryError
from harness.history import History, Op, OpType

__all__ = ["MAX_DEPTH", "build_history", "depth_exceeds", "digits_message", "op_from_record"]

_TYPES = {t.value: t for t in OpType}
_KNOWN = frozenset({"index", "time", "type", "process", "f", "value", "error", "node"})

MAX_DEPTH = 100
"""How deeply a record may nest lists and maps. Real histories nest a few
levels (a transaction is a list of ``[f k v]`` lists); a value nested
thousands deep is damage or an attack, and the checkers, the report and the
JSON writer all recurse over values, so it would crash them far from the line
that caused it. Readers refuse it there instead, naming the line."""


def depth_exceeds(value: Any, limit: int = MAX_DEPTH) -> bool:
    """True if ``value`` nests lists/maps more than ``limit`` levels (iterative, so it
    cannot itself overflow the stack)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, Mapping):
            children: Any = v.values()
        elif isinstance(v, list | tuple):
            children = v
        else:
            continue
        if d >= limit:
            return True
        stack.extend((c, d + 1) for c in children)
    return False


def digits_message() -> str:
    """The cause for an integer longer than Python converts from text (4,300 digits by
    default): Python's own message tells the user to call a Python function."""
    return f"an integer of more than {sys.get_int_max_str_digits()} digits"


def build_history(
    ops: Sequence[Op], lines: Sequence[int], *, path: str | None, reindex: bool = False
) -> History:
    """``History(ops)``, with a pairing error re-raised as a :class:`FormatError`
    naming the file and the line (``lines[i]`` is the line of ``ops[i]``), since
    "event 2" alone does not tell a user where to look."""
    try:
        return History(ops, reindex=reindex)
    except HistoryError as e:
        if e.position is None or not 0 <= e.position < len(lines):
            raise FormatError(str(e), path=path) from None
        detail = e.detail
        if e.related is not None and 0 <= e.related < len(lines):
            detail += f" (see line {lines[e.related]})"
        raise FormatError(detail, path=path, line=lines[e.position]) from None


def op_from_record(
    rec: Any,
    *,
    position: int,
    path: str | None,
    line: int | None,
) -> Op:
    """Validate one record and build its :class:`Op`.

    ``position`` stands in for a missing ``index`` and ``time`` (Knossos files
    have neither; their order is their time).
    """

    def bad(msg: str) -> FormatError:
        return FormatError(msg, path=path, line=line)

    if not isinstance(rec, Mapping):
        raise bad(f"an operation must be a map/object, got {type(rec).__name__}")
    t = rec.get("type")
    if not isinstance(t, str) or t not in _TYPES:
        raise bad(f"'type' must be one of invoke, ok, fail, info; got {t!r}")
    if "process" not in rec:
        raise bad("missing 'process'")
    process = rec["process"]
    if isinstance(process, bool) or not isinstance(process, int | str):
        raise bad(f"'process' must be an integer or a name, got {process!r}")
    if isinstance(process, str) and process.lstrip("-").isdigit():
        process = int(process)
    f = rec.get("f")
    if f is None:
        raise bad("missing 'f'")
    if not isinstance(f, str | int) or isinstance(f, bool):
        raise bad(f"'f' must be a name, got {f!r}")
    index = rec.get("index", position)
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise bad(f"'index' must be a non-negative integer, got {index!r}")
    time = rec.get("time", position)
    if isinstance(time, bool) or not isinstance(time, int | float):
        raise bad(f"'time' must be a number (nanoseconds), got {time!r}")
    if isinstance(time, float) and not math.isfinite(time):
        raise bad(f"'time' must be a finite number (nanoseconds), got {time!r}")
    node = rec.get("node")
    if node is not None and not isinstance(node, str | int):
        raise bad(f"'node' must be a name, got {node!r}")
    extra = tuple(sorted((str(k), v) for k, v in rec.items() if k not in _KNOWN))
    return Op(
        index=index,
        time=int(time),
        type=_TYPES[t],
        process=process,
        f=str(f),
        value=rec.get("value"),
        error=rec.get("error"),
        node=None if node is None else str(node),
        extra=extra,
    )

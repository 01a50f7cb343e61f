"""Turning one decoded record (a JSON object or an EDN map) into an :class:`Op`.

Every reader funnels through here, so every format gets the same checks and the
same error messages: a bad record names its file and line and what was wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.errors import FormatError
from harness.history import Op, OpType

__all__ = ["op_from_record"]

_TYPES = {t.value: t for t in OpType}
_KNOWN = frozenset({"index", "time", "type", "process", "f", "value", "error", "node"})



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

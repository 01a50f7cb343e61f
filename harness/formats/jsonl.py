"""Our own history format: one JSON object per line, flushed as it is written.

Line-per-op means a run killed half-way leaves a history that is still
readable up to its last complete line, so it can be checked. A torn last line
(no trailing newline and not valid JSON) is therefore skipped rather than
rejected, and reported as a :class:`~harness.errors.FormatWarning` so the
user learns that the verdict is about one line less than the file holds.
"""

from __future__ import annotations

import gc
import json
import math
import os
import re
from array import array
from collections.abc import Iterable, Iterator
from typing import IO, Any

from harness.errors import FormatError, FormatWarning
from harness.formats.records import (
    MAX_DEPTH,
    build_history,
    depth_exceeds,
    digits_message,
    op_from_record,
)
from harness.history import History, Op, OpType

__all__ = ["HistoryWriter", "dumps_op", "read_jsonl", "stream_jsonl", "write_jsonl"]


_encode = json.JSONEncoder(separators=(",", ":"), default=lambda v: _default(v)).encode


def dumps_op(op: Op) -> str:
    """One op as a compact JSON line (no newline).

    Hand-assembled around ``json`` for the variable parts: this runs once per
    recorded event, and the generic ``json.dumps(op.to_dict())`` was the larger
    part of the harness's recording cost.
    """
    p = op.process
    head = (
        f'{{"index":{op.index},"time":{op.time},"type":"{op.type.value}",'
        f'"process":{p if type(p) is int else _encode(p)},"f":{_encode(op.f)},'
        f'"value":{_encode(op.value)}'
    )
    if op.error is not None:
        head += f',"error":{_encode(op.error)}'
    if op.node is not None:
        head += f',"node":{_encode(op.node)}'
    for k, v in op.extra:
        if k not in _FIXED:
            head += f",{_encode(k)}:{_encode(v)}"
    return head + "}"


_FIXED = frozenset({"index", "time", "type", "process", "f", "value", "error", "node"})


def _default(v: Any) -> Any:
    if isinstance(v, set | frozenset | tuple):
        return list(v)
    raise TypeError(f"not JSON-serializable: {type(v).__name__}")


def _finite_float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise ValueError(f"number {text} is out of range")
    return v


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not a number JSON allows")


# NaN and Infinity are not JSON, and a NaN value compares unequal to itself, so
# a read of it would look like a linearizability violation: refused, as are
# numbers too large for a float (1e400 would silently become infinity).
_decoder = json.JSONDecoder(parse_float=_finite_float, parse_constant=_no_constant)
_decode = _decoder.decode
_scan = _decoder.scan_once  # type: ignore[attr-defined]  # set in JSONDecoder.__init__
"""The decoder's C scanner alone: a value with nothing around it, at half the cost of
``decode`` (whose Python wrapper skips whitespace and checks the end; the fast path
checks the end itself and leaves anything with whitespace to the generic path)."""


# The shape dumps_op writes, with no error, node or extra keys: such lines skip the
# generic record checks (every field's type is fixed by the pattern) and only the value
# goes through the JSON decoder. Anything else, or a value the decoder refuses, takes the
# generic path, so errors and their messages are the same either way.
_FAST = re.compile(
    r'\{"index":(0|[1-9][0-9]{0,17}),"time":(0|[1-9][0-9]{0,17}),'
    r'"type":"(invoke|ok|fail|info)","process":(-?(?:0|[1-9][0-9]{0,17})),'
    r'"f":"([A-Za-z0-9_.:/-]{1,64})","value":(.*)\}'
)
_TYPE = {t.value: t for t in OpType}
_VALUE_CACHE_MAX = 1 << 16
_SHORT_VALUE = 48


def read_jsonl(
    text: str, *, path: str | None = None, warnings: list[FormatWarning] | None = None
) -> History:
    """Parse our JSONL. A torn last line is skipped and, when ``warnings`` is
    given, reported there (the caller decides how to show it).

    Lines in the shape :func:`dumps_op` writes take a fast path; the ops are
    compact: each ``f`` is one shared string, and a short value text seen
    recently (a read's ``[key, null]``, a write's value in its invocation and
    its completion) is decoded once and shared, so a million-op history holds
    one object per distinct value rather than one per event. Values are never
    mutated (an :class:`Op` is frozen, and so is what it carries by contract).
    """
    return _parse(_text_lines(text), path=path, warnings=warnings)


def stream_jsonl(
    path: str | os.PathLike[str], *, warnings: list[FormatWarning] | None = None
) -> History:
    """Parse a JSONL file line by line, never holding its whole text.

    The same ops, errors and warnings as :func:`read_jsonl` on the file's
    text; a line that is not UTF-8 is a :class:`FormatError` naming the line
    and the byte. Reading a 200 MB history this way keeps only the ops in
    memory, not the file's bytes and their decoded copy besides.
    """
    name = str(path)
    with open(path, "rb") as fh:
        return _parse(_file_lines(fh, name), path=name, warnings=warnings)


def _text_lines(text: str) -> Iterator[tuple[str, bool]]:
    """Each line of ``text`` (no newline), and whether it is a last line with no newline."""
    pos = 0
    end = len(text)
    find = text.find
    while pos < end:
        nl = find("\n", pos)
        if nl < 0:
            yield text[pos:], True
            return
        yield text[pos:nl], False
        pos = nl + 1


def _file_lines(fh: IO[bytes], path: str) -> Iterator[tuple[str, bool]]:
    """The lines of a binary file as text, read in blocks of whole lines.

    A block is decoded and split in C; only a block that is not UTF-8 is
    gone through line by line, to name the line and the byte.
    """
    offset = 0  # bytes before the current block
    lineno = 0  # lines before the current block
    rest = b""
    while True:
        chunk = fh.read(_BLOCK)
        if not chunk:
            break
        data = rest + chunk if rest else chunk
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            rest = data
            continue
        block, rest = data[:cut], data[cut:]
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError:
            _name_bad_line(block, offset, lineno, path)
            raise  # not reached: _name_bad_line raises
        lines = text.split("\n")
        lines.pop()  # the block ends with a newline: nothing after it
        for line in lines:
            yield line, False
        offset += cut
        lineno += len(lines)
    if rest:
        try:
            yield rest.decode("utf-8"), True
        except UnicodeDecodeError:
            _name_bad_line(rest, offset, lineno, path)


def _name_bad_line(block: bytes, offset: int, lineno: int, path: str) -> None:
    """Raise the FormatError for the first line of ``block`` that is not UTF-8."""
    for raw in block.split(b"\n"):
        lineno += 1
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise FormatError(f"not UTF-8 text (byte {offset + e.start}, column {e.start + 1})",
                              path=path, line=lineno) from None
        offset += len(raw) + 1
    raise FormatError("not UTF-8 text", path=path)


_BLOCK = 1 << 22


_NOT_PARSED: Any = object()


def _scan_value(text: str) -> Any:
    """The JSON value ``text`` holds exactly, or :data:`_NOT_PARSED` (let the generic path
    parse the whole line and say what is wrong)."""
    try:
        v, end = _scan(text, 0)
    except (StopIteration, ValueError, RecursionError):
        return _NOT_PARSED
    return v if end == len(text) else _NOT_PARSED


def _parse(
    lines: Iterator[tuple[str, bool]], *, path: str | None,
    warnings: list[FormatWarning] | None
) -> History:
    # The cyclic GC would walk the growing list of ops again and again (millions of
    # tracked objects, none of them in a cycle); paused, a long history parses a
    # fifth faster or more.
    was = gc.isenabled()
    gc.disable()
    try:
        return _parse_lines(lines, path=path, warnings=warnings)
    finally:
        if was:
            gc.enable()


def _parse_lines(
    lines: Iterator[tuple[str, bool]], *, path: str | None,
    warnings: list[FormatWarning] | None
) -> History:
    ops: list[Op] = []
    linenos = array("q")  # 8 bytes a line, not an int object each
    fast = _FAST.fullmatch
    types = _TYPE
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    NP = _NOT_PARSED
    # Op(...) without the frozen dataclass's __init__ frame: the same nine fields, set
    # the way that __init__ sets them, at two thirds of the cost per line.
    new_op, set_ = object.__new__, object.__setattr__
    lineno = 0
    append_op, append_line = ops.append, linenos.append
    for raw, torn_tail in lines:
        lineno += 1
        m = fast(raw)
        if m is not None:
            idx, tm, typ, proc, f, vtext = m.groups()
            if len(vtext) <= _SHORT_VALUE:
                v = values.get(vtext, NP)
                if v is NP:
                    v = _scan_value(vtext)
                    if v is not NP:
                        if len(values) >= _VALUE_CACHE_MAX:
                            values.clear()
                        values[vtext] = v
            elif vtext.count("[") + vtext.count("{") > MAX_DEPTH:
                v = NP  # the generic path checks the depth
            else:
                v = _scan_value(vtext)
            if v is not NP:
                name = names.get(f)
                if name is None:
                    name = names[f] = f
                op = new_op(Op)
                set_(op, "index", int(idx))
                set_(op, "time", int(tm))
                set_(op, "type", types[typ])
                set_(op, "process", int(proc))
                set_(op, "f", name)
                set_(op, "value", v)
                set_(op, "error", None)
                set_(op, "node", None)
                set_(op, "extra", ())
                append_op(op)
                append_line(lineno)
                continue
        s = raw.strip()
        if not s:
            continue
        try:
            rec = _decode(s)
        except json.JSONDecodeError as e:
            if torn_tail:
                # The writer was killed mid-line: everything before it stands.
                if warnings is not None:
                    warnings.append(FormatWarning(
                        "torn last line ignored (no newline at the end and not valid JSON, "
                        "as a run killed mid-write leaves it)",
                        path=path, line=lineno, kind="torn-line"))
                break
            raise FormatError(
                f"invalid JSON: {e.msg} (column {e.colno})", path=path, line=lineno
            ) from None
        except RecursionError:
            raise FormatError(f"nested deeper than {MAX_DEPTH} levels",
                              path=path, line=lineno) from None
        except ValueError as e:
            msg = digits_message() if "digits" in str(e) else str(e)
            raise FormatError(f"invalid JSON: {msg}", path=path, line=lineno) from None
        if s.count("[") + s.count("{") > MAX_DEPTH and depth_exceeds(rec):
            raise FormatError(f"nested deeper than {MAX_DEPTH} levels", path=path, line=lineno)
        append_op(op_from_record(rec, position=len(ops), path=path, line=lineno))
        append_line(lineno)
    return build_history(ops, linenos, path=path)


def write_jsonl(ops: Iterable[Op], path: str | os.PathLike[str]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for op in ops:
            fh.write(dumps_op(op))
            fh.write("\n")


class HistoryWriter:
    """Streams ops to a JSONL file, flushing each line so a killed run keeps its history.

    ``fsync_every`` trades durability for speed: the OS page cache survives the
    harness being killed, so a flush per op is enough unless the machine dies.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync_every: int = 0) -> None:
        self._fh: IO[str] = open(path, "w", encoding="utf-8", buffering=1 << 16)  # noqa: SIM115
        self._fsync_every = fsync_every
        self._count = 0

    def write(self, op: Op) -> None:
        fh = self._fh
        fh.write(dumps_op(op))
        fh.write("\n")
        fh.flush()
        self._count += 1
        if self._fsync_every and self._count % self._fsync_every == 0:
            os.fsync(fh.fileno())

    @property
    def count(self) -> int:
        return self._count

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            self._fh.close()

    def __enter__(self) -> HistoryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

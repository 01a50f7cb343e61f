"""Importers for Porcupine's test data, so its published histories can be checked.

Two formats (see the corpus MANIFEST):

* ``etcd-log``: Jepsen 2015 etcd log lines
  ``INFO  jepsen.util - <proc> :<type> :<f> <value>``. A ``:fail :cas`` there is
  a *definite compare failure*: the cas happened and returned false, which is an
  observation of the register (its value was not ``from``). It becomes a
  ``fail`` completion with ``error="mismatch"``, which the etcd model reads as
  that observation. ``:info ... :timed-out`` is indeterminate.
* ``kv-lines``: one EDN map per line with ``:key``; the op's value becomes
  ``[key, value]`` (Jepsen's "independent" convention) so kv models partition
  by key.
"""

from __future__ import annotations

import re

from harness.errors import FormatError, FormatWarning
from harness.formats.edn import iter_values
from harness.formats.records import build_history, op_from_record
from harness.history import History, Op, OpType

__all__ = ["read_etcd_log", "read_kv_lines"]

_LINE = re.compile(
    r"^\s*INFO\s+jepsen\.util\s+-\s+(?P<proc>\S+)\s+:(?P<type>\w+)\s+:(?P<f>\w+)\s*(?P<value>.*?)\s*$"
)
_TYPES = {t.value: t for t in OpType}


def _etcd_value(text: str, *, path: str | None, line: int) -> object:
    if text in ("", "nil"):
        return None
    if text.startswith(":"):
        return text[1:]
    vals = list(iter_values(text, path=path, first_line=line))
    if len(vals) != 1:
        raise FormatError(f"cannot read value {text!r}", path=path, line=line)
    return vals[0]


def read_etcd_log(
    text: str, *, path: str | None = None, warnings: list[FormatWarning] | None = None
) -> History:
    ops: list[Op] = []
    lines: list[int] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        m = _LINE.match(raw)
        if m is None:
            raise FormatError(
                "not a jepsen.util op line ('INFO jepsen.util - <process> :<type> :<f> <value>')",
                path=path,
                line=lineno,
            )
        t = m.group("type")
        if t not in _TYPES:
            raise FormatError(f"unknown op type :{t}", path=path, line=lineno)
        proc_text = m.group("proc")
        process: int | str = int(proc_text) if proc_text.lstrip("-").isdigit() else proc_text
        value = _etcd_value(m.group("value"), path=path, line=lineno)
        error = None
        if t == "info" and value == "timed-out":
            value, error = None, "timed-out"
        elif t == "fail" and m.group("f") == "cas":
            error = "mismatch"
        rec = {"type": t, "process": process, "f": m.group("f"), "value": value, "error": error}
        ops.append(op_from_record(rec, position=len(ops), path=path, line=lineno))
        lines.append(lineno)
    return build_history(ops, lines, path=path)


def read_kv_lines(
    text: str, *, path: str | None = None, warnings: list[FormatWarning] | None = None
) -> History:
    ops: list[Op] = []
    lines: list[int] = []
    for lineno, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        vals = list(iter_values(raw, path=path, first_line=lineno))
        if len(vals) != 1 or not isinstance(vals[0], dict):
            raise FormatError("expected one EDN map per line", path=path, line=lineno)
        rec = dict(vals[0])
        if "key" not in rec:
            raise FormatError("missing :key", path=path, line=lineno)
        rec["value"] = [rec.pop("key"), rec.get("value")]
        ops.append(op_from_record(rec, position=len(ops), path=path, line=lineno))
        lines.append(lineno)
    return build_history(ops, lines, path=path)
